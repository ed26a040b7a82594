"""A group that makes its members site administrators on sign-in (Tableau's minimumSiteRole, the grant-license
mode) counts as an administrator group: the shipped policy denies adding anyone to it whatever its name, and
a policy without that rule at least says so in the preview the approver reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.server.conftest import Steward, error_text, structured, write_policy
from tests.server.test_governance_flow import GATED_POLICY, candidate, membership_posts

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def make_marketing_grant_admin(steward: Steward):
    user, group = candidate(steward)
    group.minimum_site_role = "SiteAdministratorExplorer"  # the name says nothing about it
    return user, group


async def test_the_shipped_policy_denies_a_group_that_grants_site_administrator(steward: Steward, tmp_path: Path) -> None:
    shipped = tmp_path / "policies.yaml"
    shutil.copyfile(ROOT / "policies.yaml", shipped)
    steward.policy_path = shipped
    user, group = make_marketing_grant_admin(steward)
    async with steward.client() as client:
        text = error_text(await client.call_tool("add_user_to_group", {"user": user.name, "group": group.name}))
    assert "denied by rule 'no-admin-granting-groups'" in text and "SiteAdministratorExplorer" in text
    assert membership_posts(steward, group.id) == [] and user.id not in group.member_ids


async def test_the_preview_warns_when_a_group_grants_site_administrator(steward: Steward, tmp_path: Path) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))  # no rule on the granted role
    user, group = make_marketing_grant_admin(steward)
    async with steward.client() as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.name, "group": group.name}))
    preview = pending["approval"]["preview"]
    assert f"WARNING: {group.name} grants SiteAdministratorExplorer on sign-in" in preview
    assert "makes them a site administrator" in preview
