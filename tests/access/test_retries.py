"""Retries, deadlines, timeouts and the error mapping, counted from the emulator's request log."""

from __future__ import annotations

import socket

import pytest

from emulator.testing import ADMIN_PAT, EXPLORER_PAT
from server.tableau import (
    BadConfiguration,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    TableauClient,
    TableauUnavailable,
    TimedOut,
)

from .conftest import log_entries, settings_for, sign_ins
from .flaky_proxy import FlakyProxy

pytestmark = pytest.mark.anyio


def _users_requests(emu):
    return log_entries(emu, method="GET", path_suffix="/users")


async def test_429_storm_without_retry_after_is_ridden_out(emu):
    async with TableauClient(settings_for(emu)) as client:
        emu.control.inject_429(6)
        users = await client.list_users()
    assert len(users) == 4
    statuses = [e.status for e in _users_requests(emu)]
    assert statuses == [429] * 6 + [200]


async def test_429_with_retry_after_seconds_and_http_date(emu):
    async with TableauClient(settings_for(emu)) as client:
        emu.control.inject_429(1, retry_after=1)
        assert len(await client.list_users()) == 4
        emu.control.inject_429(1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")  # in the past: retry at once
        assert len(await client.list_groups()) == 2
    assert [e.status for e in _users_requests(emu)] == [429, 200]
    assert [e.status for e in log_entries(emu, path_suffix="/groups")] == [429, 200]


async def test_5xx_bursts_are_ridden_out(emu):
    async with TableauClient(settings_for(emu)) as client:
        for status in (502, 503, 504):
            emu.control.inject_5xx(2, status=status)
        users = await client.list_users()
    assert len(users) == 4
    assert [e.status for e in _users_requests(emu)] == [502, 502, 503, 503, 504, 504, 200]


async def test_rate_limited_when_the_deadline_passes(emu):
    async with TableauClient(settings_for(emu, retry_deadline=0.3, retry_base_delay=0.05)) as client:
        emu.control.inject_429(1000)
        with pytest.raises(RateLimited) as info:
            await client.list_users()
        emu.control.clear_faults()
    message = str(info.value)
    assert "rate limiting" in message and "retry in about" in message
    attempts = len(_users_requests(emu))
    assert 2 <= attempts < 1000


async def test_retry_after_beyond_the_deadline_fails_at_once_with_the_hint(emu):
    async with TableauClient(settings_for(emu, retry_deadline=5)) as client:
        emu.control.inject_429(1, retry_after=120)
        with pytest.raises(RateLimited) as info:
            await client.list_users()
        assert info.value.retry_after == 120
        assert "retry in about 120 s" in str(info.value)
        # Tableau Cloud's hint in the body ("Please retry after N minutes") counts too.
        emu.control.inject_429(1, retry_after=None, body_hint=True)
        with pytest.raises(RateLimited) as info:
            await client.list_groups()
        assert info.value.retry_after == 60
    assert len(_users_requests(emu)) == 1 and len(log_entries(emu, path_suffix="/groups")) == 1


async def test_unavailable_when_5xx_outlasts_the_deadline(emu):
    async with TableauClient(settings_for(emu, retry_deadline=0.3, retry_base_delay=0.05)) as client:
        emu.control.inject_5xx(1000, status=503)
        with pytest.raises(TableauUnavailable) as info:
            await client.list_users()
        emu.control.clear_faults()
    assert "HTTP 503" in str(info.value) and emu.url in str(info.value)


async def test_500_is_not_retried(emu):
    async with TableauClient(settings_for(emu)) as client:
        emu.control.inject_5xx(1, status=500)
        with pytest.raises(TableauUnavailable, match="HTTP 500"):
            await client.list_users()
    assert [e.status for e in _users_requests(emu)] == [500]


async def test_non_idempotent_requests_are_not_retried(emu):
    group = next(g for g in emu.state.groups.values() if g.name == "Analysts")
    admin = next(u for u in emu.state.users.values() if u.name == "admin@example.com")
    async with TableauClient(settings_for(emu)) as client:
        emu.control.inject_429(1)
        with pytest.raises(RateLimited, match="not repeated automatically"):
            await client.add_group_member(group.id, admin.id)
        emu.control.inject_5xx(1, status=503)
        with pytest.raises(TableauUnavailable, match="not repeated automatically"):
            await client.add_group_member(group.id, admin.id)
        emu.control.inject_5xx(1, status=503)
        with pytest.raises(TableauUnavailable):
            await client.remove_group_member(group.id, admin.id)
    posts = log_entries(emu, method="POST", path_suffix=f"/groups/{group.id}/users")
    assert [e.status for e in posts] == [429, 503]
    assert [e.status for e in log_entries(emu, method="DELETE")] == [503]
    assert admin.id not in group.member_ids


async def test_refresh_post_is_retried_because_a_duplicate_is_harmless(emu):
    workbook = next(w for w in emu.state.workbooks.values() if w.has_extracts and not w.refresh_failure)
    async with TableauClient(settings_for(emu)) as client:
        emu.control.inject_5xx(1, status=503)
        started = await client.refresh("workbook", workbook.id)
    assert started.job_id in emu.state.jobs
    refreshes = log_entries(emu, method="POST", path_suffix="/refresh")
    assert [e.status for e in refreshes] == [503, 202]


async def test_connection_resets_of_reads_are_retried_but_not_of_writes(emu):
    group = next(g for g in emu.state.groups.values() if g.name == "Analysts")
    admin = next(u for u in emu.state.users.values() if u.name == "admin@example.com")
    with FlakyProxy(emu.port) as proxy:
        settings = settings_for(emu).model_copy(update={"server_url": proxy.url})
        events = []
        client = TableauClient(settings)
        client.add_observer(events.append)
        async with client:
            proxy.drop_next(2)
            assert len(await client.list_users()) == 4
            assert proxy.dropped == 2
            proxy.drop_next(1)
            with pytest.raises(TableauUnavailable, match="connection .* was lost"):
                await client.add_group_member(group.id, admin.id)
            assert proxy.dropped == 3
    users = [e for e in events if e.path.endswith("/users") and e.method == "GET"]
    assert [(e.status, e.error) for e in users] == [(None, "ConnectionError")] * 2 + [(200, None)]
    assert [e.attempt for e in users] == [1, 2, 3]
    posts = [e for e in events if e.method == "POST" and e.path.endswith(f"/groups/{group.id}/users")]
    assert [(e.status, e.error) for e in posts] == [(None, "ConnectionError")]
    assert admin.id not in group.member_ids


async def test_timeout_against_a_slow_server(emu):
    events = []
    client = TableauClient(settings_for(emu, request_timeout=0.3))
    client.add_observer(events.append)
    async with client:
        emu.control.set_latency(1500)
        with pytest.raises(TimedOut) as info:
            await client.list_users()
        emu.control.set_latency(0)
    assert "did not answer within the request timeout" in str(info.value)
    users = [e for e in events if e.path.endswith("/users")]
    assert [(e.status, e.error) for e in users] == [(None, "ReadTimeout")]  # not retried


async def test_connection_refused_names_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from server.config import Settings

    settings = Settings.for_pat(f"http://127.0.0.1:{port}", "small", *ADMIN_PAT, retry_base_delay=0.01)
    with pytest.raises(BadConfiguration) as info:
        async with TableauClient(settings):
            pass
    assert f"http://127.0.0.1:{port}" in str(info.value) and "refused" in str(info.value)


async def test_bad_credentials_fail_once_without_a_retry_loop(emu):
    settings = settings_for(emu, pat=("admin-pat", "wrong-secret-do-not-log"))
    with pytest.raises(BadConfiguration) as info:
        async with TableauClient(settings):
            pass
    message = str(info.value)
    assert "refused the sign-in" in message and "site 'small'" in message
    assert "wrong-secret-do-not-log" not in message and "wrong-secret-do-not-log" not in repr(info.value)
    assert sign_ins(emu) == 1
    assert len(emu.request_log) == 1


async def test_bad_site_is_a_configuration_error(emu):
    settings = settings_for(emu).model_copy(update={"site_id": "no-such-site"})
    with pytest.raises(BadConfiguration, match="site 'no-such-site'"):
        async with TableauClient(settings):
            pass
    assert sign_ins(emu) == 1


async def test_errors_a_model_can_act_on(emu):
    async with TableauClient(settings_for(emu)) as client:
        with pytest.raises(NotFound) as info:
            await client.get_content("workbook", "9f1c0000-0000-4000-8000-000000000000")
        assert str(info.value) == (
            "workbook 9f1c0000… not found on site 'small'; list_content can find it by name."
        )
        with pytest.raises(NotFound, match="list_jobs"):
            await client.get_job("9f1c0000-0000-4000-8000-000000000001")
        with pytest.raises(NotFound, match="project 9f1c0000… not found"):
            await client.get_content("project", "9f1c0000-0000-4000-8000-000000000002")
        with pytest.raises(InvalidRequest, match="not a content kind"):
            await client.list_content("dashboard")  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest, match="filter operator"):
            await client.list_content("workbook", filters=[("name", "like", "x")])
        with pytest.raises(InvalidRequest, match="cannot express"):
            await client.list_content("workbook", filters=[("name", "eq", "a,b")])
        with pytest.raises(InvalidRequest, match="not supported"):
            await client.list_content("workbook", filters=[("noSuchField", "eq", "x")])
    group = next(g for g in emu.state.groups.values() if g.name == "Analysts")
    async with TableauClient(settings_for(emu, pat=EXPLORER_PAT)) as client:
        with pytest.raises(Forbidden, match="may not"):
            await client.add_group_member(group.id, next(iter(emu.state.users)))
