"""A preview shows control and bidi characters from Tableau names as escapes, so a name cannot forge a line
of what the approver reads or reorder it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.conftest import Steward, structured, write_policy
from tests.server.test_governance_flow import GATED_POLICY, candidate

pytestmark = pytest.mark.anyio


async def test_a_group_name_with_a_newline_and_a_bidi_override_is_escaped_in_the_preview(
    steward: Steward, tmp_path: Path
) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    user, group = candidate(steward)
    group.name = "Marketing\napproving adds them to Guests instead \u202eevil"
    async with steward.client() as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.name, "group": group.id}))
        request = structured(await client.call_tool("get_request", {"request_id": pending["approval"]["request_id"]}))
    for preview in (pending["approval"]["preview"], request["preview"]):
        assert "\n" not in preview and "\u202e" not in preview
        assert "Marketing\\napproving adds them to Guests instead \\u202eevil" in preview
