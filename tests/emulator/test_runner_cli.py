"""EmulatorServer lifecycle and the `tableau-steward emulator` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import tableauserverclient as TSC

from emulator.cli import DEFAULT_PAT_NAME, DEFAULT_PAT_SECRET, add_pats
from emulator.runner import EmulatorServer
from emulator.testing import small_site

ROOT = Path(__file__).resolve().parents[2]


def test_start_stop_picks_a_free_port():
    server = EmulatorServer(small_site(), validate_xsd=True)
    server.start()
    try:
        assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{server.url}/api/3.24/serverInfo", timeout=10).status_code == 200
    finally:
        server.stop()
    assert server.xsd_failures == []
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{server.url}/api/3.24/serverInfo", timeout=2)


def test_two_servers_run_side_by_side():
    with (
        EmulatorServer(small_site(content_url="one")) as one,
        EmulatorServer(small_site(content_url="two")) as two,
    ):
        assert one.url != two.url
        for emu in (one, two):
            server = TSC.Server(emu.url, use_server_version=True, http_options={"timeout": 10})
            server.auth.sign_in(
                TSC.PersonalAccessTokenAuth(
                    "admin-pat", "admin-pat-secret-for-tests", site_id=emu.state.content_url
                )
            )
            assert server.site_id == emu.state.id


def test_add_pats_defaults_and_usernames():
    site = small_site()
    site.pats.clear()
    [default] = add_pats(site, [])
    assert (default.name, default.secret, default.user_id) == (
        DEFAULT_PAT_NAME,
        DEFAULT_PAT_SECRET,
        site.site_admin().id,
    )
    site.pats.clear()
    admin_pat, viewer_pat = add_pats(site, ["ops:s3cret", "view:v-secret:viewer@example.com"])
    assert admin_pat.user_id == site.site_admin().id
    assert viewer_pat.user_id == site.user_by_name("viewer@example.com").id
    with pytest.raises(SystemExit):
        add_pats(site, ["broken"])
    with pytest.raises(SystemExit):
        add_pats(site, ["x:y:nobody@example.com"])


def test_cli_serves_until_interrupted():
    pytest.importorskip("emulator.generator")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "emulator",
            "--port",
            "0",
            "--site",
            "clidemo",
            "--job-speed",
            "50",
            "--pat",
            "cli-token:cli-secret",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line and "clidemo" in line and "cli-token" in line
        url = line.split()[3]
        server = TSC.Server(url, use_server_version=True, http_options={"timeout": 10})
        server.auth.sign_in(TSC.PersonalAccessTokenAuth("cli-token", "cli-secret", site_id="clidemo"))
        assert server.workbooks.get()[1].total_available > 0
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    assert process.stdout.read() == ""  # exactly one line on stdout


def test_emulator_process_serves_a_pickled_site_with_remote_knobs():
    from emulator.process import EmulatorProcess

    site = small_site()
    with EmulatorProcess(site, job_speed=100) as emu:
        server = TSC.Server(emu.url, use_server_version=True, http_options={"timeout": 10})
        server.auth.sign_in(
            TSC.PersonalAccessTokenAuth("admin-pat", "admin-pat-secret-for-tests", site_id="small")
        )
        assert server.workbooks.get()[1].total_available == len(site.workbooks)
        emu.control.inject_429(1, retry_after=3)
        with pytest.raises(TSC.ServerResponseError):
            server.workbooks.get()
        emu.control.set_latency(5)
        assert emu.control.latency_ms == 5
        assert [e.status for e in emu.request_log][-2:] == [200, 429]
        assert emu.control.expire_sessions() == 1
