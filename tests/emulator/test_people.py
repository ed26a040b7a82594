"""Users and groups: reads, administration, membership changes and what non-admins may not do."""

from __future__ import annotations

import pytest
import tableauserverclient as TSC

from emulator.testing import EXPLORER_PAT, signed_in_server


def _group(state, name):
    return next(g for g in state.groups.values() if g.name == name)


def test_list_and_get_users(small_emulator, small_server):
    state = small_emulator.state
    users = list(TSC.Pager(small_server.users, TSC.RequestOptions(pagesize=2)))
    assert {u.id: u.site_role for u in users} == {u.id: u.site_role for u in state.users.values()}
    admin = state.site_admin()
    item = small_server.users.get_by_id(admin.id)
    assert (item.name, item.fullname, item.site_role) == (admin.name, admin.full_name, admin.site_role)


def test_add_update_and_remove_user(small_emulator, small_server):
    state = small_emulator.state
    added = small_server.users.add(TSC.UserItem("newbie@example.com", TSC.UserItem.Roles.Viewer))
    assert state.users[added.id].site_role == "Viewer"
    added.site_role = TSC.UserItem.Roles.Explorer
    added.fullname = "New Bie"
    small_server.users.update(added)
    assert (state.users[added.id].site_role, state.users[added.id].full_name) == ("Explorer", "New Bie")
    small_server.users.remove(added.id)
    assert added.id not in state.users


def test_duplicate_user_and_bad_role(small_server):
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.users.add(TSC.UserItem("admin@example.com", TSC.UserItem.Roles.Viewer))
    assert caught.value.code == "409017"
    item = TSC.UserItem("someone@example.com", TSC.UserItem.Roles.Viewer)
    item._site_role = "Wizard"
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.users.add(item)
    assert caught.value.code == "400013"


def test_removing_an_owner_needs_map_assets_to(small_emulator, small_server):
    state = small_emulator.state
    creator = state.user_by_name("creator@example.com")
    owned = {wb.id for wb in state.workbooks.values() if wb.owner_id == creator.id}
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.users.remove(creator.id)
    assert caught.value.code.startswith("409")
    admin = state.site_admin()
    small_server.users.remove(creator.id, map_assets_to=admin.id)
    assert creator.id not in state.users
    assert all(state.workbooks[w].owner_id == admin.id for w in owned)
    assert all(creator.id not in g.member_ids for g in state.groups.values())


def test_user_groups_and_workbooks(small_emulator, small_server):
    state = small_emulator.state
    creator = state.user_by_name("creator@example.com")
    user = small_server.users.get_by_id(creator.id)
    small_server.users.populate_groups(user)
    assert {g.id for g in user.groups} == {g.id for g in state.groups_of(creator.id)}
    small_server.users.populate_workbooks(user, owned_only=True)
    assert {wb.id for wb in user.workbooks} == {
        wb.id for wb in state.workbooks.values() if wb.owner_id == creator.id
    }


def test_groups_list_with_user_count(small_emulator, small_server):
    state = small_emulator.state
    groups = list(TSC.Pager(small_server.groups))
    assert {g.id: g.user_count for g in groups} == {g.id: len(g.member_ids) for g in state.groups.values()}
    assert {g.domain_name for g in groups} == {"local"}


def test_group_lifecycle_and_membership(small_emulator, small_server):
    state = small_emulator.state
    group = TSC.GroupItem("Engineers")
    group.minimum_site_role = TSC.UserItem.Roles.Explorer
    created = small_server.groups.create(group)
    assert state.groups[created.id].minimum_site_role == "Explorer"

    viewer = state.user_by_name("viewer@example.com")
    explorer = state.user_by_name("explorer@example.com")
    added = small_server.groups.add_user(created, viewer.id)
    assert added.id == viewer.id and viewer.id in state.groups[created.id].member_ids
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.groups.add_user(created, viewer.id)
    assert caught.value.code == "409011"

    bulk = small_server.groups.add_users(created, [explorer.id])
    assert [u.id for u in bulk] == [explorer.id]
    small_server.groups.populate_users(created)
    assert {u.id for u in created.users} == {viewer.id, explorer.id}

    small_server.groups.remove_user(created, viewer.id)
    small_server.groups.remove_users(created, [explorer.id])
    assert state.groups[created.id].member_ids == set()

    created.name = "Platform Engineers"
    small_server.groups.update(created)
    assert state.groups[created.id].name == "Platform Engineers"
    small_server.groups.delete(created.id)
    assert created.id not in state.groups


def test_duplicate_group_name_is_409009(small_server):
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.groups.create(TSC.GroupItem("Analysts"))
    assert caught.value.code == "409009"


def test_explorer_cannot_administer_groups_or_users(small_emulator):
    state = small_emulator.state
    explorer = signed_in_server(small_emulator, EXPLORER_PAT)
    analysts = _group(state, "Analysts")
    viewer = state.user_by_name("viewer@example.com")
    item = explorer.groups.get()[0][0]
    for attempt in (
        lambda: explorer.groups.add_user(
            next(g for g in explorer.groups.get()[0] if g.id == analysts.id), viewer.id
        ),
        lambda: explorer.groups.create(TSC.GroupItem("Shadow IT")),
        lambda: explorer.users.add(TSC.UserItem("friend@example.com", TSC.UserItem.Roles.Creator)),
        lambda: explorer.groups.delete(item.id),
    ):
        with pytest.raises(TSC.ServerResponseError) as caught:
            attempt()
        assert caught.value.code.startswith("403")
    assert viewer.id not in analysts.member_ids
    assert all(g.name != "Shadow IT" for g in state.groups.values())


def test_missing_user_and_group_are_404(small_server):
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.users.get_by_id("00000000-0000-4000-8000-000000000000")
    assert caught.value.code == "404002"
    group = TSC.GroupItem("ghost")
    group._id = "00000000-0000-4000-8000-000000000001"
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.groups.add_user(group, "00000000-0000-4000-8000-000000000000")
    assert caught.value.code.startswith("404")
