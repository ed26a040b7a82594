"""Every list and get is bounded by the signed-in user's View (`Read`) capability, as Tableau does."""

from __future__ import annotations

import time

import jwt
import pytest
import tableauserverclient as TSC

from emulator.testing import CONNECTED_APP


def _signed_in_as(emu, user_name: str) -> TSC.Server:
    client_id, secret_id, secret_value = CONNECTED_APP
    claims = {"iss": client_id, "sub": user_name, "aud": "tableau", "exp": int(time.time()) + 300, "jti": user_name,
              "scp": ["tableau:content:read"]}
    token = jwt.encode(claims, secret_value, algorithm="HS256", headers={"kid": secret_id, "iss": client_id})
    server = TSC.Server(emu.url, use_server_version=True, http_options={"timeout": 10})
    server.auth.sign_in(TSC.JWTAuth(token, site_id=emu.state.content_url))
    return server


def test_a_viewer_lists_and_counts_only_what_they_may_view(small_emulator):
    state = small_emulator.state
    viewer = _signed_in_as(small_emulator, "viewer@example.com")
    admin = _signed_in_as(small_emulator, "admin@example.com")
    # small_site: the viewer has a user Allow for Read on the first workbook only.
    granted = [wb_id for (kind, wb_id), rules in state.permissions.items()
               if kind == "workbooks" and rules.get(("user", state.user_by_name("viewer@example.com").id))]
    items, page = viewer.workbooks.get(TSC.RequestOptions(pagesize=1))
    assert [wb.id for wb in items] == granted
    assert page.total_available == 1  # the total counts only visible items
    _, all_page = admin.workbooks.get()
    assert all_page.total_available == len(state.workbooks) > 1


def test_a_get_of_hidden_content_is_forbidden(small_emulator):
    state = small_emulator.state
    viewer = _signed_in_as(small_emulator, "viewer@example.com")
    visible = {wb.id for wb in TSC.Pager(viewer.workbooks)}
    hidden = next(wb_id for wb_id in state.workbooks if wb_id not in visible)
    with pytest.raises(TSC.ServerResponseError) as caught:
        viewer.workbooks.get_by_id(hidden)
    assert caught.value.code.startswith("403")
    assert viewer.workbooks.get_by_id(next(iter(visible))).id in visible
    views = [v.id for v in TSC.Pager(viewer.views)]
    assert views and all(state.views[v].workbook_id in visible for v in views)
