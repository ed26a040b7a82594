"""Injected faults and knobs, and the exception TSC 0.42 raises for each; the control API over HTTP."""

from __future__ import annotations

import pytest
import requests
import tableauserverclient as TSC
from tableauserverclient.server.endpoint.exceptions import InternalServerError

from emulator.testing import signed_in_server, start_emulator


def test_429_with_retry_after_seconds(small_emulator, small_server):
    small_emulator.control.inject_429(1, retry_after=7)
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.workbooks.get()
    assert caught.value.code == "429000"
    small_server.workbooks.get()  # the fault was for one request only
    url = f"{small_emulator.url}/api/3.24/sites/{small_server.site_id}/workbooks"
    small_emulator.control.inject_429(1, retry_after=7)
    reply = requests.get(url, headers={"x-tableau-auth": small_server.auth_token}, timeout=10)
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "7"


def test_429_without_retry_after_and_with_body_hint(small_emulator, small_server):
    url = f"{small_emulator.url}/api/3.24/sites/{small_server.site_id}/projects"
    headers = {"x-tableau-auth": small_server.auth_token}
    small_emulator.control.inject_429(1)
    plain = requests.get(url, headers=headers, timeout=10)
    assert plain.status_code == 429 and "Retry-After" not in plain.headers
    small_emulator.control.inject_429(1, retry_after=None, body_hint=True)
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.projects.get()
    assert caught.value.code == "429000"
    assert "retry after 1 minutes" in caught.value.detail


def test_429_with_http_date(small_emulator, small_server):
    small_emulator.control.inject_429(1, retry_after="date")
    reply = requests.get(f"{small_emulator.url}/api/3.24/serverInfo", timeout=10)
    assert reply.status_code == 429 and reply.headers["Retry-After"].endswith("GMT")


def test_rate_based_429(small_emulator, small_server):
    small_emulator.control.rate_429(every=3)
    outcomes = []
    for _ in range(6):
        try:
            small_server.projects.get()
            outcomes.append("ok")
        except TSC.ServerResponseError as err:
            outcomes.append(err.code)
    assert outcomes == ["ok", "ok", "429000", "ok", "ok", "429000"]
    small_emulator.control.rate_429(0)
    small_server.projects.get()


def test_5xx_raises_internal_server_error(small_emulator, small_server):
    small_emulator.control.inject_5xx(2, status=502)
    for _ in range(2):
        with pytest.raises(InternalServerError) as caught:
            small_server.workbooks.get()
        assert caught.value.code == 502
    small_server.workbooks.get()


def test_latency_and_client_timeout():
    with start_emulator() as emu:
        server = signed_in_server(emu, timeout=0.3)
        emu.control.set_latency(1500)
        with pytest.raises(requests.exceptions.ReadTimeout):
            server.workbooks.get()
        emu.control.set_latency(0)


def test_request_log_records_api_calls_not_control_calls(small_emulator, small_server):
    small_emulator.control.reset_request_log()
    small_server.workbooks.get()
    requests.get(f"{small_emulator.url}/_emulator/state", timeout=10)
    log = small_emulator.request_log
    assert [(e.method, e.status) for e in log] == [("GET", 200)]
    assert log[0].path.endswith("/workbooks") and log[0].duration_ms >= 0


def test_control_api_over_http(small_emulator, small_server):
    base = f"{small_emulator.url}/_emulator"
    assert requests.put(f"{base}/latency", json={"ms": 5}, timeout=10).json() == {"ms": 5.0}
    assert small_emulator.control.latency_ms == 5.0
    assert requests.get(f"{base}/latency", timeout=10).json() == {"ms": 5.0}
    requests.put(f"{base}/latency", json={"ms": 0}, timeout=10)

    assert requests.post(f"{base}/faults/429", json={"count": 2, "retry_after": 3}, timeout=10).ok
    assert small_emulator.control.pending_faults() == 2
    assert requests.delete(f"{base}/faults", timeout=10).ok
    assert small_emulator.control.pending_faults() == 0
    assert requests.post(f"{base}/faults/5xx", json={"count": 1}, timeout=10).ok
    with pytest.raises(InternalServerError) as caught:
        small_server.projects.get()
    assert caught.value.code == 503
    assert requests.post(f"{base}/faults/429/rate", json={"every": 0}, timeout=10).ok

    assert requests.put(f"{base}/job-speed", json={"speed": 25}, timeout=10).json() == {"speed": 25.0}
    assert small_emulator.app.clock.speed == 25.0
    assert requests.put(f"{base}/site", json={"run_now_enabled": False}, timeout=10).ok
    assert small_emulator.state.run_now_enabled is False

    assert requests.get(f"{base}/requests", timeout=10).json()[-1]["status"] == 503
    assert requests.delete(f"{base}/requests", timeout=10).ok
    assert small_emulator.request_log == []

    assert requests.post(f"{base}/sessions/expire", timeout=10).json() == {"expired": 1}
    with pytest.raises(TSC.FailedSignInError):
        small_server.projects.get()
    assert requests.get(f"{base}/nope", timeout=10).status_code == 404
    assert requests.put(f"{base}/latency", json={"ms": -1}, timeout=10).status_code == 400


def test_html_429_is_a_non_xml_error(small_emulator, small_server):
    small_emulator.control.inject_429(1, html=True)
    with pytest.raises(TSC.server.endpoint.exceptions.NonXMLResponseError):
        small_server.workbooks.get()


def test_job_speed_knob_reaches_the_clock(small_emulator):
    small_emulator.control.job_speed = 3.5
    assert small_emulator.app.clock.speed == 3.5


def test_concurrent_clients_with_latency(small_emulator, small_server):
    # One TSC Server shared by threads (allowed since TSC 0.42); every call must succeed.
    import threading

    small_emulator.control.set_latency(20)
    small_emulator.control.reset_request_log()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                assert small_server.workbooks.get(TSC.RequestOptions(pagesize=3))[1].total_available == 12
        except BaseException as exc:  # noqa: BLE001  reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert [e.status for e in small_emulator.request_log] == [200] * 20


def test_fail_write_fails_only_the_nth_write_and_flows_change_owner(small_emulator, small_server):
    """Reads do not count; the Nth write answers the injected error; the writes around it are served."""
    base = f"{small_emulator.url}/_emulator"
    flows, _ = small_server.flows.get()
    users, _ = small_server.users.get()
    heir = next(u for u in users if u.site_role == "Creator")
    url = f"{small_server.flows.baseurl}/{flows[0].id}"
    body = f'<tsRequest><flow><owner id="{heir.id}"/></flow></tsRequest>'.encode()
    assert requests.post(f"{base}/faults/write", json={"nth": 2, "status": 500, "code": "500000"}, timeout=10).ok
    small_server.flows.put_request(url, body)  # write 1: served
    small_server.projects.get()  # a read: not counted
    with pytest.raises(InternalServerError) as caught:
        small_server.flows.put_request(url, body)  # write 2: the injected failure
    assert caught.value.code == 500 and b"500000" in caught.value.content
    small_server.flows.put_request(url, body)  # write 3: served again
    assert small_emulator.state.flows[flows[0].id].owner_id == heir.id
    assert small_emulator.control.pending_faults() == 0
    assert requests.post(f"{base}/faults/write", json={"nth": 0}, timeout=10).status_code == 400
