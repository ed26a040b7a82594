"""`/auth/signin`, `/auth/signout`, `/auth/switchSite` and the unauthenticated `/serverInfo`."""

from __future__ import annotations

from ..auth import authenticate, bad_credentials
from ..authz import is_admin
from ..errors import ApiError
from ..model import utcnow
from ..render import PRODUCT_BUILD, PRODUCT_VERSION
from ..routing import Call, Reply, route
from ..xmlout import el, esc

# days:hours:minutes:seconds, the shape a PAT sign-in reports (TSC ignores it).
ESTIMATED_EXPIRY = "361:23:59:59"


@route("POST", "/auth/signin", auth=False)
def sign_in(call: Call) -> Reply:
    credentials = call.child("credentials")
    assert credentials is not None
    user, pat_name = authenticate(call.state, credentials)
    impersonate = credentials.find("user")
    if impersonate is not None and impersonate.get("id"):
        target = call.state.users.get(impersonate.get("id", ""))
        if not is_admin(user) or target is None:
            raise bad_credentials("Impersonation requires a site administrator and an existing user.")
        user = target
    user.last_login = utcnow()
    token = call.emu.sessions.open(user.id, pat_name)
    state = call.state
    # TSC reads `credentials` as a direct child of tsResponse, then .//site and .//user.
    return Reply(
        200,
        f'<credentials token="{esc(token)}" estimatedTimeToExpiration="{ESTIMATED_EXPIRY}">'
        f'<site id="{state.id}" contentUrl="{esc(state.content_url)}"/>'
        f'<user id="{user.id}"/></credentials>',
    )


@route("POST", "/auth/signout", auth=False)
def sign_out(call: Call) -> Reply:
    sessions = call.emu.sessions
    sessions.touch(call.token)  # no header → 401000, unknown or expired token → 401002, as on a server
    sessions.close(call.token)
    return Reply(204)


@route("POST", "/auth/switchSite")
def switch_site(call: Call) -> Reply:
    site = call.child("site")
    assert site is not None
    if site.get("contentUrl", "").lower() == call.state.content_url.lower():
        raise ApiError(403, "403070", "Forbidden", "The user is already signed in to this site.")
    raise ApiError(401, "401001", "Signin Error", f"Site '{site.get('contentUrl')}' could not be found.")


@route("GET", "/serverInfo", auth=False)
def server_info(call: Call) -> Reply:
    return Reply(
        200,
        f'<serverInfo><productVersion build="{PRODUCT_BUILD}">{PRODUCT_VERSION}</productVersion>'
        f"<restApiVersion>{esc(call.emu.api_version)}</restApiVersion></serverInfo>",
    )


@route("GET", "/sessions/current")
def current_session(call: Call) -> Reply:
    """The signed-in session's site and user (what tableau-mcp reads after signing in)."""
    user, state = call.actor, call.state
    site = el("site", [("id", state.id), ("name", state.name), ("contentUrl", state.content_url)])
    who = el("user", [("id", user.id), ("name", user.name), ("siteRole", user.site_role)])
    return Reply(200, f"<session>{site}{who}</session>")
