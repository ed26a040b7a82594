"""Per-user sessions (`identity: per_user`): one connected-app sign-in per user, bounded, least recently used
out first, re-sign-in after expiry per user, caches per user."""

from __future__ import annotations

import anyio
import pytest
from pydantic import SecretStr

from emulator.testing import CONNECTED_APP
from server.config import ConfigError, ConnectedApp, Settings
from server.tableau.errors import TableauError
from server.tableau.identities import UserSessions

from .conftest import log_entries, settings_for, sign_ins, wait_for_log

pytestmark = pytest.mark.anyio

VIEWER, ADMIN, EXPLORER = "viewer@example.com", "admin@example.com", "explorer@example.com"


def per_user_settings(emu) -> Settings:
    client_id, secret_id, secret_value = CONNECTED_APP
    app = ConnectedApp(client_id=client_id, secret_id=secret_id, secret_value=SecretStr(secret_value))
    return settings_for(emu, connected_app=app)


async def test_concurrent_calls_of_one_user_share_one_sign_in(emu):
    sessions = UserSessions(per_user_settings(emu))
    totals: list[int] = []

    async def work() -> None:
        async with sessions.lease(VIEWER) as client:
            totals.append(len(await client.list_content("workbook")))

    try:
        async with anyio.create_task_group() as tasks:
            for _ in range(8):
                tasks.start_soon(work)
    finally:
        await sessions.close()
    assert sign_ins(emu) == 1
    assert totals == [totals[0]] * 8 and 0 < totals[0] < len(emu.state.workbooks)


async def test_caches_are_per_user(emu):
    sessions = UserSessions(per_user_settings(emu))
    try:
        async with sessions.lease(ADMIN) as admin:
            everything = await admin.project_records()
        async with sessions.lease(VIEWER) as viewer:
            visible = await viewer.project_records()
    finally:
        await sessions.close()
    assert len(visible) < len(everything) == len(emu.state.projects)


async def test_the_least_recently_used_idle_session_is_signed_out_past_capacity(emu):
    sessions = UserSessions(per_user_settings(emu), capacity=2)
    try:
        for user in (VIEWER, ADMIN, VIEWER, EXPLORER):  # EXPLORER pushes out ADMIN, the least recently used
            async with sessions.lease(user) as client:
                await client.server_info()
        assert [u.casefold() for u in sessions.users] == [VIEWER, EXPLORER]
        wait_for_log(emu, len(emu.request_log))
        assert sign_ins(emu) == 3 and len(log_entries(emu, method="POST", path_suffix="/auth/signout")) == 1
        async with sessions.lease(ADMIN.upper()) as client:  # names are not case-sensitive; signs in again
            await client.server_info()
        assert sign_ins(emu) == 4
    finally:
        await sessions.close()


async def test_a_session_in_use_is_never_closed_under_its_call(emu):
    sessions = UserSessions(per_user_settings(emu), capacity=1)
    try:
        async with sessions.lease(VIEWER) as viewer, sessions.lease(ADMIN) as admin:
            assert len(sessions.users) == 2  # over capacity while both calls run
            await viewer.list_content("workbook")
            await admin.list_content("workbook")
        assert len(sessions.users) == 1
    finally:
        await sessions.close()


async def test_an_expired_user_session_signs_in_again_once(emu):
    sessions = UserSessions(per_user_settings(emu))
    try:
        async with sessions.lease(VIEWER) as client:
            await client.list_content("workbook")
            emu.app.sessions.expire_all()
            results = []
            async with anyio.create_task_group() as tasks:
                for kind in ("workbook", "view", "datasource", "project"):
                    tasks.start_soon(lambda k=kind: _collect(client, k, results))
        assert len(results) == 4 and sessions.sign_ins == {VIEWER: 2}
    finally:
        await sessions.close()


async def _collect(client, kind: str, results: list) -> None:
    results.append(await client.list_content(kind))


async def test_a_user_tableau_does_not_know_fails_with_tableaus_reason(emu):
    sessions = UserSessions(per_user_settings(emu))
    try:
        with pytest.raises(TableauError) as failed:
            async with sessions.lease("nobody@example.com"):
                pass
        text = str(failed.value)
        assert "Tableau user 'nobody@example.com'" in text and "'sub' claim does not name a user" in text, text
        assert sessions.users == []
    finally:
        await sessions.close()


def test_per_user_sessions_need_a_connected_app(emu):
    with pytest.raises(ConfigError, match="TABLEAU_CONNECTED_APP_CLIENT_ID"):
        UserSessions(settings_for(emu))


def test_the_connected_app_comes_from_the_environment_and_its_secret_stays_hidden():
    env = {
        "TABLEAU_SERVER_URL": "https://tableau.example.com",
        "TABLEAU_PAT_NAME": "steward",
        "TABLEAU_PAT_SECRET": "pat-secret-value",
        "TABLEAU_CONNECTED_APP_CLIENT_ID": "client-1",
        "TABLEAU_CONNECTED_APP_SECRET_ID": "secret-1",
        "TABLEAU_CONNECTED_APP_SECRET_VALUE": "very-secret-value",
    }
    settings = Settings.from_env(env)
    creds = settings.as_user("jordan.lee@example.com").credentials
    assert (creds.client_id, creds.secret_id, creds.username) == ("client-1", "secret-1", "jordan.lee@example.com")
    assert "very-secret-value" not in repr(settings) + repr(creds) + settings.describe()
    with pytest.raises(ConfigError, match="TABLEAU_CONNECTED_APP_SECRET_VALUE not set"):
        Settings.from_env({k: v for k, v in env.items() if k != "TABLEAU_CONNECTED_APP_SECRET_VALUE"})
