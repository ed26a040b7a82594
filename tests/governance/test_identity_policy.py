"""`identity: service | per_user` and `tableau_user` in the policy (issue 14): read strictly, hashed, mapped."""

from __future__ import annotations

from server.governance.policy import parse_policy
from tests.governance.test_policy_loading import BASE, error_for

PER_USER = BASE.replace("mode: read-write\n", "mode: read-write\nidentity: per_user\n").replace(
    "  boss: {roles: [approver]}", "  boss: {roles: [approver], tableau_user: boss@example.com}"
).replace("  principal: me\n", "  principal: me\n  tableau_user: me@example.com\n")


def test_service_identity_is_the_default_and_maps_nobody() -> None:
    policy = parse_policy(BASE)
    assert policy.identity == "service" and policy.tableau_user_of("boss") is None


def test_per_user_maps_principals_and_the_local_principal_to_tableau_users() -> None:
    policy = parse_policy(PER_USER)
    assert policy.identity == "per_user"
    assert policy.tableau_user_of("boss") == "boss@example.com"
    assert policy.tableau_user_of("me") == "me@example.com"
    assert policy.tableau_user_of("stranger") is None
    # The mapping is part of what the policy hash covers: changing who someone is in Tableau changes the hash.
    assert parse_policy(PER_USER.replace("boss@example.com", "other@example.com")).hash != policy.hash


def test_an_unknown_identity_or_misspelt_key_is_an_error() -> None:
    assert "per_user" in error_for(PER_USER.replace("identity: per_user", "identity: per-person"))
    assert "tableau_user" in error_for(PER_USER.replace("tableau_user: boss", "tableau_usr: boss"))
