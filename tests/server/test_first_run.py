"""Start-up and first run: one clear line and a non-zero exit for the usual mistakes, and a demo that says
how to reach the emulated site with TSC."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import tableauserverclient as TSC

from emulator.testing import DEMO_PAT, start_emulator
from tests.server.conftest import site_copy
from tests.server.test_transports import REPO, cli_env, free_port, open_policy, run_cli, stop, wait_for_port


def _one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("tableau-steward:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _serve(tmp_path: Path, url: str, secret: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(TABLEAU_SERVER_URL=url, TABLEAU_SITE_ID="demo", TABLEAU_PAT_NAME=DEMO_PAT[0], TABLEAU_PAT_SECRET=secret)
    return run_cli(["serve", "--policy", str(open_policy(tmp_path)), *extra], env)


def test_bad_credentials_are_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with start_emulator(site_copy()) as emu:
        result = _serve(tmp_path, emu.url, "not-the-secret")
    _one_clear_line(result, "refused the sign-in", "personal access token")
    assert "not-the-secret" not in result.stderr


def test_an_unreachable_server_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _serve(tmp_path, f"http://127.0.0.1:{port}", DEMO_PAT[1])
    _one_clear_line(result, "Cannot connect", f"127.0.0.1:{port}")


def test_a_busy_port_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run_cli(
            ["demo", "--transport", "http", "--no-auth", "--port", str(port), "--policy", str(open_policy(tmp_path))],
            cli_env(),
        )
    _one_clear_line(result, f"127.0.0.1:{port}", "--port")


def test_the_demo_prints_credentials_that_work_with_tsc_and_keeps_request_logs_quiet(tmp_path: Path) -> None:
    port = free_port()
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "demo", "--transport", "http", "--no-auth", "--port", str(port),
             "--policy", str(open_policy(tmp_path))],
            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc, stderr_path)
            text = stderr_path.read_text()
            found = re.search(r"TSC\.Server\('([^']+)'.*PersonalAccessTokenAuth\('([^']+)', '([^']+)', site_id='([^']*)'\)", text)
            assert found, text
            url, name, secret, site = found.groups()
            server = TSC.Server(url, use_server_version=True)
            with server.auth.sign_in(TSC.PersonalAccessTokenAuth(name, secret, site_id=site)):
                workbooks, pagination = server.workbooks.get()
            assert pagination.total_available > 0 and workbooks
        finally:
            stop(proc)
    text = stderr_path.read_text()
    assert "signed in to" in text, "the server's own log lines stay"
    assert " TSC: " not in text, "TSC's per-request lines are off unless --verbose"


def test_make_demo_takes_a_port() -> None:
    result = subprocess.run(
        ["make", "-n", "demo", "PORT=9123", "ARGS=--verbose"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "tableau-steward demo --transport http --no-auth --port 9123 --verbose" in result.stdout
