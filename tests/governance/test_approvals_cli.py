"""The approvals CLI's own checks, before it sends anything: where the token comes from and how it is held."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.governance import cli


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_a_token_file_others_can_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEWARD_ADMIN_TOKEN", raising=False)
    token_file = tmp_path / "admin.token"
    token_file.write_text("an-admin-token-for-tests-only\n")
    token_file.chmod(0o644)
    code, err = run(["approvals", "list", "--server", "http://127.0.0.1:9", "--token-file", str(token_file)], capsys)
    assert code == 1 and "readable by others; chmod 600" in err and "an-admin-token" not in err


def test_without_any_token_nothing_is_sent(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEWARD_ADMIN_TOKEN", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, err = run(["approvals", "approve", "apr_x", "--server", "http://127.0.0.1:9"], capsys)
    assert code == 1 and "an admin token is needed" in err


def test_a_server_url_must_be_http_and_https_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["approvals", "list", "--server", "file:///etc/passwd"], capsys)
    assert code == 1 and "--server must be an http(s) URL" in err
    code, err = run(["approvals", "list", "--server", "http://steward.internal:8765"], capsys)
    assert code == 1 and "use https://" in err
