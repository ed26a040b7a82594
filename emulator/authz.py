"""What a signed-in user may see and change.

Reads are filtered as Tableau does: a list holds only the content the user may view (the `Read`
capability: "View"), totals count only that, and a get of content they may not view is a 403.

Simplified from Tableau's effective-permission rules (semantics §4.3): administrators may do
anything; content may be changed by its owner, by the owner of its project (or any ancestor
project: project leaders), or by a user with an explicit Allow (and no Deny) for the capability,
directly or through a group. Viewers and Unlicensed users never write.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from . import model as m
from .errors import ApiError

T = TypeVar("T")

NON_WRITERS = frozenset({"Viewer", "Unlicensed"})
PUBLISHERS = frozenset({"Creator", "ExplorerCanPublish"}) | m.ADMIN_ROLES


def is_admin(user: m.User) -> bool:
    return user.site_role in m.ADMIN_ROLES


def denied(detail: str) -> ApiError:
    return ApiError(403, "403000", "Forbidden", detail)


def require_admin(user: m.User, action: str) -> None:
    if not is_admin(user):
        raise denied(f"Only site administrators can {action}; '{user.name}' is {user.site_role}.")


def leads(state: m.SiteState, user: m.User, project_id: str | None, group_ids: Iterable[str] | None = None) -> bool:
    seen = set()
    while project_id and project_id not in seen:
        seen.add(project_id)
        project = state.projects.get(project_id)
        if project is None:
            return False
        if project.owner_id == user.id:
            return True
        rules = state.permissions.get(("projects", project.id), {})
        if _allowed(state, user, rules, "ProjectLeader", group_ids):
            return True
        project_id = project.parent_id
    return False


def _allowed(
    state: m.SiteState, user: m.User, rules: m.Rules, capability: str, group_ids: Iterable[str] | None = None
) -> bool:
    mine = rules.get(("user", user.id), {}).get(capability)
    if mine is not None:
        return mine == "Allow"  # a user rule overrides group rules
    if group_ids is None:
        group_ids = [g.id for g in state.groups_of(user.id)]
    modes = {rules.get(("group", g), {}).get(capability) for g in group_ids}
    return "Allow" in modes and "Deny" not in modes


def may_view(
    state: m.SiteState, user: m.User, resource: str, item: object, group_ids: Iterable[str] | None = None
) -> bool:
    """The View (`Read`) capability on one project, workbook, view, data source or flow.

    Content carries the rules it was published with (the project's defaults), so its own rules
    govern it. A view of a workbook that shows sheets as tabs follows the workbook (semantics §4.3).
    """
    if is_admin(user):
        return True
    if group_ids is None:
        group_ids = [g.id for g in state.groups_of(user.id)]
    if resource == "projects":
        project: m.Project = item  # type: ignore[assignment]
        return leads(state, user, project.id, group_ids) or _allowed(
            state, user, state.permissions.get(("projects", project.id), {}), "Read", group_ids
        )
    if resource == "views":
        view: m.View = item  # type: ignore[assignment]
        workbook = state.workbooks.get(view.workbook_id)
        if workbook is None:
            return False
        own = state.permissions.get(("views", view.id))
        if workbook.show_tabs or own is None:
            return may_view(state, user, "workbooks", workbook, group_ids)
        return (
            view.owner_id == user.id
            or leads(state, user, workbook.project_id, group_ids)
            or _allowed(state, user, own, "Read", group_ids)
        )
    owner_id, project_id = getattr(item, "owner_id", None), getattr(item, "project_id", None)
    if owner_id == user.id or leads(state, user, project_id, group_ids):
        return True
    return _allowed(state, user, state.permissions.get((resource, item.id), {}), "Read", group_ids)  # type: ignore[attr-defined]


def visible(state: m.SiteState, user: m.User, resource: str, items: m.Collection | Iterable[T]) -> list[T]:
    """The items of one collection (or of a selection of it) `user` may view, in order: what every
    list selects from. An administrator's list of a whole collection is its `Listing`."""
    if isinstance(items, m.Collection):
        if is_admin(user):
            return items.listing()
        items = items.values()
    if is_admin(user):
        return list(items)
    group_ids = [g.id for g in state.groups_of(user.id)]  # once per list, not once per item
    return [item for item in items if may_view(state, user, resource, item, group_ids)]


def require_view(state: m.SiteState, user: m.User, resource: str, item: object) -> None:
    if not may_view(state, user, resource, item):
        raise denied(f"'{user.name}' does not have permission to view this {resource[:-1]}.")


def may_change(
    state: m.SiteState,
    user: m.User,
    resource: str,
    item_id: str,
    owner_id: str | None,
    project_id: str | None,
    capability: str = "Write",
) -> bool:
    if is_admin(user):
        return True
    if user.site_role in NON_WRITERS:
        return False
    if owner_id == user.id or leads(state, user, project_id):
        return True
    return _allowed(state, user, state.permissions.get((resource, item_id), {}), capability)


def require_change(
    state: m.SiteState,
    user: m.User,
    resource: str,
    item_id: str,
    owner_id: str | None,
    project_id: str | None,
    capability: str = "Write",
) -> None:
    if not may_change(state, user, resource, item_id, owner_id, project_id, capability):
        raise denied(f"'{user.name}' may not change {resource[:-1]} '{item_id}' (needs {capability}).")
