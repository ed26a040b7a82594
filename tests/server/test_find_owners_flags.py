"""find_owners decides who is flagged for all owners with `_flagged` and builds the flags with `_flags`
only for the page shown: the two must agree, at the day boundary too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from tools.content import _flagged, _flags

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("days", [1, 90, 365])
@pytest.mark.parametrize(
    "user",
    [
        None,
        SimpleNamespace(site_role="Unlicensed", last_login=NOW),
        SimpleNamespace(site_role="Viewer", last_login=None),
        *(
            SimpleNamespace(site_role="Viewer", last_login=NOW - timedelta(days=d, seconds=s))
            for d in (0, 1, 89, 90, 91, 364, 365)
            for s in (-1, 0, 1)
        ),
        SimpleNamespace(site_role="Viewer", last_login=NOW + timedelta(days=3)),  # a clock ahead of ours
    ],
)
def test_flagged_agrees_with_flags(user, days):
    flags, _ = _flags(user, days, NOW)
    assert _flagged(user, NOW - timedelta(days=days)) == bool(flags)
