"""Users and groups: directory reads, user administration, group membership (single and 3.21 bulk)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from .. import model as m
from .. import tables
from ..authz import require_admin
from ..errors import ApiError, bad_request, conflict, missing
from ..query import flag
from ..routing import Call, Reply, route
from .content import WORKBOOK_ATTRS, listable

USER_ATTRS = (
    "id",
    "name",
    "siteRole",
    "fullName",
    "email",
    "lastLogin",
    "authSetting",
    "locale",
    "domainName",
)
GROUP_ATTRS = ("id", "name", "minimumSiteRole", "userCount")
AUTH_SETTINGS = ("ServerDefault", "SAML", "OpenID", "TableauIDWithMFA")
ALL_USERS = "All Users"
# Tableau documents these refusals but not one stable code for each across versions; the emulator's codes
# are fixed here, and clients should rely on the status and the text (Steward checks the rule beforehand).
LAST_ADMIN_CODE = "409105"
ALL_USERS_CODE = "403012"


def _check_not_last_admin(state: m.SiteState, user: m.User, new_role: str) -> None:
    """Tableau keeps at least one site administrator: demoting the last one is refused."""
    if user.site_role not in m.ADMIN_ROLES or new_role in m.ADMIN_ROLES:
        return
    if not any(u.site_role in m.ADMIN_ROLES for u in state.users.values() if u.id != user.id):
        raise conflict(
            LAST_ADMIN_CODE,
            f"'{user.name}' is the site's only administrator; make another user a site administrator first.",
            summary="Cannot demote the last site administrator",
        )


def get_user(call: Call, user_id: str) -> m.User:
    user = call.state.users.get(user_id)
    if user is None:
        raise missing("user", user_id)
    return user


def get_group(call: Call, group_id: str) -> m.Group:
    group = call.state.groups.get(group_id)
    if group is None:
        raise missing("group", group_id)
    return group


def _site_role(value: str | None) -> str:
    if value not in m.SITE_ROLES:
        raise bad_request("400013", f"'{value}' is not a valid site role.", summary="Invalid site role")
    return value


# -- users --------------------------------------------------------------------------------------


@route("GET", "/sites/{site}/users")
def list_users(call: Call) -> Reply:
    f, render = call.fields(USER_ATTRS), call.render
    return call.page_rows(
        call.state.users.listing(),
        tables.users(call.state),
        "users",
        render.list_rows("user", f),
    )


@route("GET", "/sites/{site}/users/{user}")
def get_user_route(call: Call) -> Reply:
    return Reply(200, call.render.user(get_user(call, call.params["user"])))


@route("POST", "/sites/{site}/users")
def add_user(call: Call) -> Reply:
    require_admin(call.actor, "add users")
    body = call.child("user")
    assert body is not None
    name = (body.get("name") or "").strip()
    if not name:
        raise bad_request("400000", "A user needs a name.")
    role = _site_role(body.get("siteRole"))
    if call.state.user_by_name(name) is not None:
        raise conflict("409017", f"A user named '{name}' already exists on the site.")
    user = m.User(
        id=m.new_id(),
        name=name,
        full_name=body.get("fullName") or "",
        email=body.get("email") or "",
        site_role=role,
        created_at=m.utcnow(),
        auth_setting=_auth_setting(body.get("authSetting")),
    )
    call.state.users[user.id] = user
    return Reply(201, call.render.user(user))


def _auth_setting(value: str | None) -> str:
    if value is None:
        return "ServerDefault"
    if value not in AUTH_SETTINGS:
        raise bad_request("400000", f"'{value}' is not a valid authSetting.")
    return value


@route("PUT", "/sites/{site}/users/{user}")
def update_user(call: Call) -> Reply:
    user = get_user(call, call.params["user"])
    body = call.child("user")
    assert body is not None
    if user.id != call.actor.id or set(body.attrib) - {"fullName", "email", "password", "locale"}:
        require_admin(call.actor, "change other users or site roles")
    if "siteRole" in body.attrib:
        role = _site_role(body.get("siteRole"))
        _check_not_last_admin(call.state, user, role)
        user.site_role = role
    if "authSetting" in body.attrib:
        user.auth_setting = _auth_setting(body.get("authSetting"))
    if "name" in body.attrib and body.get("name") and body.get("name") != user.name:
        other = call.state.user_by_name(body.get("name", ""))
        if other is not None and other.id != user.id:
            raise conflict("409017", f"A user named '{body.get('name')}' already exists on the site.")
        user.name = body.get("name", user.name)
    user.full_name = body.get("fullName", user.full_name)
    user.email = body.get("email", user.email)
    user.locale = body.get("locale", user.locale)
    if body.get("password"):
        user.password = body.get("password")
    return Reply(200, call.render.user(user))


@route("DELETE", "/sites/{site}/users/{user}")
def remove_user(call: Call) -> Reply:
    require_admin(call.actor, "remove users")
    state = call.state
    user = get_user(call, call.params["user"])
    heir_id = call.arg("mapAssetsTo")
    owned = [
        item
        for coll in (state.workbooks, state.datasources, state.flows, state.projects)
        for item in coll.values()
        if item.owner_id == user.id
    ]
    if owned and not heir_id:
        raise conflict(
            "409003", f"User '{user.name}' owns {len(owned)} items; pass mapAssetsTo to transfer them."
        )
    if heir_id:
        heir = get_user(call, heir_id)
        for item in owned:
            item.owner_id = heir.id
        for view in state.views.values():
            if view.owner_id == user.id:
                view.owner_id = heir.id
    for group in state.groups.values():
        group.member_ids.discard(user.id)
    for rules in list(state.permissions.values()) + list(state.default_permissions.values()):
        rules.pop(("user", user.id), None)
    for pat_name in [n for n, p in state.pats.items() if p.user_id == user.id]:
        del state.pats[pat_name]
    del state.users[user.id]
    return Reply(204)


@route("GET", "/sites/{site}/users/{user}/groups")
def user_groups(call: Call) -> Reply:
    user = get_user(call, call.params["user"])
    render = call.render
    return call.page(call.state.groups_of(user.id), tables.groups(call.state), "groups", render.group)


@route("GET", "/sites/{site}/users/{user}/workbooks")
def user_workbooks(call: Call) -> Reply:
    user = get_user(call, call.params["user"])
    f, render = call.fields(WORKBOOK_ATTRS), call.render
    items = listable(call, "workbooks")
    if flag(call.query, "ownedBy"):
        items = [wb for wb in items if wb.owner_id == user.id]
    return call.page_rows(
        items,
        tables.workbooks(call.state),
        "workbooks",
        render.list_rows("workbook", f),
    )


# -- groups -------------------------------------------------------------------------------------


@route("GET", "/sites/{site}/groups")
def list_groups(call: Call) -> Reply:
    f, render = call.fields(GROUP_ATTRS), call.render
    return call.page_rows(
        call.state.groups.values(),
        tables.groups(call.state),
        "groups",
        render.list_rows("group", f),
    )


def _check_group_name(state: m.SiteState, name: str, exclude: str | None = None) -> None:
    for other in state.groups.values():
        if other.id != exclude and other.name.lower() == name.lower():
            raise conflict("409009", f"A group named '{name}' already exists on the site.")


@route("POST", "/sites/{site}/groups")
def create_group(call: Call) -> Reply:
    require_admin(call.actor, "create groups")
    body = call.child("group")
    assert body is not None
    if body.find("import") is not None:
        raise bad_request("400000", "The emulator does not import Active Directory groups.")
    name = (body.get("name") or "").strip()
    if not name:
        raise bad_request("400000", "A group needs a name.")
    _check_group_name(call.state, name)
    minimum = body.get("minimumSiteRole")
    group = m.Group(id=m.new_id(), name=name, minimum_site_role=_site_role(minimum) if minimum else None)
    call.state.groups[group.id] = group
    return Reply(201, call.render.group(group))


@route("PUT", "/sites/{site}/groups/{group}")
def update_group(call: Call) -> Reply:
    require_admin(call.actor, "update groups")
    group = get_group(call, call.params["group"])
    body = call.child("group")
    assert body is not None
    name = (body.get("name") or group.name).strip()
    _check_group_name(call.state, name, exclude=group.id)
    group.name = name
    if "minimumSiteRole" in body.attrib:
        group.minimum_site_role = (
            _site_role(body.get("minimumSiteRole")) if body.get("minimumSiteRole") else None
        )
    return Reply(200, call.render.group(group))


@route("DELETE", "/sites/{site}/groups/{group}")
def delete_group(call: Call) -> Reply:
    require_admin(call.actor, "delete groups")
    state = call.state
    group = get_group(call, call.params["group"])
    if group.name == "All Users":
        raise ApiError(403, "403000", "Forbidden", "The All Users group cannot be deleted.")
    for rules in list(state.permissions.values()) + list(state.default_permissions.values()):
        rules.pop(("group", group.id), None)
    del state.groups[group.id]
    return Reply(204)


@route("GET", "/sites/{site}/groups/{group}/users")
def group_users(call: Call) -> Reply:
    group = get_group(call, call.params["group"])
    state, render = call.state, call.render
    members = [u for u in state.users.values() if u.id in group.member_ids]
    return call.page(members, tables.users(state), "users", lambda u: render.user(u))


@route("POST", "/sites/{site}/groups/{group}/users")
def add_group_users(call: Call) -> Reply:
    require_admin(call.actor, "change group membership")
    group = get_group(call, call.params["group"])
    root = call.xml()
    bulk = root.find("users")
    elements: list[Element] = bulk.findall("user") if bulk is not None else root.findall("user")
    if not elements:
        raise bad_request("400000", "The request names no users.")
    users = [get_user(call, e.get("id", "")) for e in elements]
    for user in users:
        if user.id in group.member_ids:
            raise conflict(
                "409011",
                f"User '{user.name}' is already a member of group '{group.name}'.",
                summary="Specified User Already In Group",
            )
    group.member_ids.update(u.id for u in users)
    render = call.render
    if bulk is not None:
        # The 3.29 XSD only allows a top-level <users> after <pagination>; a one-page pagination keeps
        # the answer schema-valid, and TSC reads just the users.
        n = len(users)
        return Reply(
            200,
            f'<pagination pageNumber="1" pageSize="{n}" totalAvailable="{n}"/>'
            "<users>" + "".join(render.user(u) for u in users) + "</users>",
        )
    return Reply(200, render.user(users[0]))


@route("DELETE", "/sites/{site}/groups/{group}/users/{user}")
def remove_group_user(call: Call) -> Reply:
    require_admin(call.actor, "change group membership")
    group = get_group(call, call.params["group"])
    user = get_user(call, call.params["user"])
    if group.name == ALL_USERS:
        raise _all_users_refusal()
    if user.id not in group.member_ids:
        raise missing("user", f"{user.id} in group {group.id}")
    group.member_ids.discard(user.id)
    return Reply(204)


def _all_users_refusal() -> ApiError:
    return ApiError(
        403, ALL_USERS_CODE, "Forbidden",
        "Users cannot be removed from the All Users group; every user of the site is in it. "
        "Remove the user from the site instead.",
    )


@route("PUT", "/sites/{site}/groups/{group}/users/remove")
def remove_group_users(call: Call) -> Reply:
    require_admin(call.actor, "change group membership")
    group = get_group(call, call.params["group"])
    bulk = call.child("users")
    assert bulk is not None
    users = [get_user(call, e.get("id", "")) for e in bulk.findall("user")]
    if group.name == ALL_USERS and users:
        raise _all_users_refusal()
    for user in users:
        group.member_ids.discard(user.id)
    return Reply(204)
