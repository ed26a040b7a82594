"""The server does not start without the right signing key: a store sealed with another key, or a key file
kept in the store's directory, stops `serve` with exit 2 and a message, before anything is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main as cli_main
from server.governance import AuditKeyError, AuditLog
from server.governed import Governance
from tests.server.conftest import Steward

TABLEAU_ENV = ("TABLEAU_SERVER_URL", "TABLEAU_SITE_ID", "TABLEAU_PAT_NAME", "TABLEAU_PAT_SECRET")


def tableau_env(steward: Steward, monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator.testing import DEMO_PAT

    values = (steward.emulator.url, steward.state.content_url, *DEMO_PAT)
    for name, value in zip(TABLEAU_ENV, values, strict=True):
        monkeypatch.setenv(name, value)


def test_serve_refuses_a_store_sealed_with_another_key(
    steward: Steward, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Governance.open(steward.policy_path).close()  # the store is sealed with the session's key
    store = steward.policy_path.parent / "audit.sqlite"
    head = AuditLog.open(store, readonly=True).head()
    tableau_env(steward, monkeypatch)
    monkeypatch.setenv("STEWARD_SIGNING_KEY", "42" * 32)
    mark = len(steward.emulator.request_log)
    assert cli_main(["serve", "--transport", "stdio", "--policy", str(steward.policy_path)]) == 2
    err = capsys.readouterr().err
    assert "is sealed with signing key" in err and "needs the same key" in err
    assert steward.requests_since(mark) == []  # not even a sign-in
    with pytest.raises(AuditKeyError, match="is sealed with signing key"):
        Governance.open(steward.policy_path)  # what the lifespan would do, refused the same way
    monkeypatch.delenv("STEWARD_SIGNING_KEY")
    assert AuditLog.open(store, readonly=True).head() == head  # nothing was written with the wrong key


def test_serve_refuses_a_key_file_in_the_store_directory(
    steward: Steward, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tableau_env(steward, monkeypatch)
    monkeypatch.setenv("STEWARD_SIGNING_KEY_FILE", str(Path(steward.policy_path).parent / "signing.key"))
    assert cli_main(["serve", "--transport", "stdio", "--policy", str(steward.policy_path)]) == 2
    assert "in the audit store's directory" in capsys.readouterr().err
    assert not (Path(steward.policy_path).parent / "signing.key").exists()
