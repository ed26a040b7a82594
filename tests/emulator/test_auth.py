"""Sign-in with every credential kind, sessions, expiry, sign-out and serverInfo, through TSC 0.42."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
import tableauserverclient as TSC

from emulator.authz import may_view
from emulator.testing import (
    ADMIN_PAT,
    CONNECTED_APP,
    EXPLORER_PAT,
    PASSWORD,
    signed_in_server,
    small_site,
    start_emulator,
)


def _server(emu) -> TSC.Server:
    return TSC.Server(emu.url, use_server_version=True, http_options={"timeout": 10})


def _jwt(
    sub: str,
    *,
    kid: str | None = None,
    secret: str | None = None,
    iss: str | None = None,
    aud: str = "tableau",
    lifetime: int = 300,
) -> str:
    client_id, secret_id, secret_value = CONNECTED_APP
    claims = {
        "iss": iss or client_id,
        "sub": sub,
        "aud": aud,
        "exp": int(time.time()) + lifetime,
        "jti": "test-jti",
        "scp": ["tableau:content:read"],
    }
    return jwt.encode(
        claims, secret or secret_value, algorithm="HS256", headers={"kid": kid or secret_id, "iss": client_id}
    )


def test_server_info_negotiates_the_configured_version():
    with start_emulator(api_version="3.22") as emu:
        server = signed_in_server(emu)
        assert server.version == "3.22"
        info = server.server_info.get()
        assert info.rest_api_version == "3.22"
        assert info.product_version


def test_pat_sign_in_returns_site_and_user(small_emulator):
    server = _server(small_emulator)
    server.auth.sign_in(TSC.PersonalAccessTokenAuth(*ADMIN_PAT, site_id="small"))
    state = small_emulator.state
    assert server.site_id == state.id
    assert server.user_id == state.pats[ADMIN_PAT[0]].user_id
    assert state.users[server.user_id].last_login is not None


def test_password_sign_in(small_emulator):
    server = _server(small_emulator)
    server.auth.sign_in(TSC.TableauAuth("explorer@example.com", PASSWORD, site_id="small"))
    assert small_emulator.state.users[server.user_id].name == "explorer@example.com"


def test_connected_app_jwt_sign_in(small_emulator):
    server = _server(small_emulator)
    server.auth.sign_in(TSC.JWTAuth(_jwt("creator@example.com"), site_id="small"))
    assert small_emulator.state.users[server.user_id].name == "creator@example.com"
    state = small_emulator.state
    creator = state.users[server.user_id]
    seen = {p.id for p in TSC.Pager(server.projects)}
    assert seen == {p.id for p in state.projects.values() if may_view(state, creator, "projects", p)}


@pytest.mark.parametrize(
    "auth",
    [
        TSC.PersonalAccessTokenAuth(ADMIN_PAT[0], "wrong-secret", site_id="small"),
        TSC.PersonalAccessTokenAuth("no-such-token", "x", site_id="small"),
        TSC.PersonalAccessTokenAuth(*ADMIN_PAT, site_id="other-site"),
        TSC.TableauAuth("explorer@example.com", "wrong password", site_id="small"),
        TSC.TableauAuth("nobody@example.com", PASSWORD, site_id="small"),
    ],
    ids=["pat-secret", "pat-name", "site", "password", "user"],
)
def test_bad_credentials_fail_with_401001(small_emulator, auth):
    with pytest.raises(TSC.FailedSignInError) as caught:
        _server(small_emulator).auth.sign_in(auth)
    assert caught.value.code == "401001"


@pytest.mark.parametrize(
    "token_kwargs",
    [
        {"secret": "not-the-app-secret-not-the-app-secret-0000"},
        {"kid": "wrong-secret-id"},
        {"iss": "unknown-client"},
        {"aud": "someone-else"},
        {"lifetime": -60},  # expired
        {"lifetime": 3600},  # more than 10 minutes ahead
    ],
    ids=["signature", "kid", "iss", "aud", "expired", "too-long"],
)
def test_bad_jwts_fail_with_401001(small_emulator, token_kwargs):
    token = _jwt("creator@example.com", **token_kwargs)
    with pytest.raises(TSC.FailedSignInError) as caught:
        _server(small_emulator).auth.sign_in(TSC.JWTAuth(token, site_id="small"))
    assert caught.value.code == "401001"


def test_jwt_for_unknown_user_fails(small_emulator):
    with pytest.raises(TSC.FailedSignInError):
        _server(small_emulator).auth.sign_in(TSC.JWTAuth(_jwt("ghost@example.com"), site_id="small"))


def test_expired_sessions_answer_401002(small_emulator):
    server = signed_in_server(small_emulator)
    assert small_emulator.control.expire_sessions() == 1
    with pytest.raises(TSC.FailedSignInError) as caught:
        server.workbooks.get()
    assert caught.value.code == "401002"
    assert server.is_signed_in()  # TSC keeps its stale token; re-signing in is the caller's job


def test_idle_sessions_expire():
    with start_emulator(session_idle_seconds=0.2) as emu:
        server = signed_in_server(emu)
        server.projects.get()
        time.sleep(0.5)
        with pytest.raises(TSC.FailedSignInError) as caught:
            server.projects.get()
        assert caught.value.code == "401002"


def test_second_pat_sign_in_ends_the_first_session(small_emulator):
    first = signed_in_server(small_emulator, EXPLORER_PAT)
    second = signed_in_server(small_emulator, EXPLORER_PAT)
    assert second.projects.get()[0]  # the second session works (the Explorer sees the projects it may view)
    with pytest.raises(TSC.FailedSignInError) as caught:
        first.projects.get()
    assert caught.value.code == "401002"


def test_other_pats_keep_their_sessions(small_emulator):
    admin = signed_in_server(small_emulator, ADMIN_PAT)
    signed_in_server(small_emulator, EXPLORER_PAT)
    assert admin.projects.get()[1].total_available == len(small_emulator.state.projects)


def test_sign_out_ends_the_session(small_emulator):
    server = signed_in_server(small_emulator)
    token, site_id = server.auth_token, server.site_id
    server.auth.sign_out()
    assert not server.is_signed_in()
    reply = requests.get(
        f"{small_emulator.url}/api/3.24/sites/{site_id}/projects",
        headers={"x-tableau-auth": token},
        timeout=10,
    )
    assert reply.status_code == 401
    assert 'code="401002"' in reply.text


def test_missing_auth_header_is_401000(small_emulator):
    reply = requests.get(
        f"{small_emulator.url}/api/3.24/sites/{small_emulator.state.id}/projects", timeout=10
    )
    assert reply.status_code == 401
    assert 'code="401000"' in reply.text


def test_any_version_in_the_path_is_accepted(small_emulator):
    server = signed_in_server(small_emulator)
    for version in ("2.4", "3.7", "3.29"):
        reply = requests.get(
            f"{small_emulator.url}/api/{version}/sites/{server.site_id}/projects",
            headers={"x-tableau-auth": server.auth_token},
            timeout=10,
        )
        assert reply.status_code == 200
        assert reply.text.startswith("<?xml")
        assert 'xmlns="http://tableau.com/api"' in reply.text


def test_unlicensed_users_cannot_sign_in():
    site = small_site()
    viewer = site.user_by_name("viewer@example.com")
    viewer.site_role = "Unlicensed"
    with start_emulator(site) as emu, pytest.raises(TSC.FailedSignInError):
        _server(emu).auth.sign_in(TSC.TableauAuth(viewer.name, PASSWORD, site_id="small"))
