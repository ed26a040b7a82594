"""Fixtures for the governance tests: a rich test policy, a store path, a controllable clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.governance.policy import Policy, parse_policy
from tests.governance.helpers import RICH_POLICY, FakeClock


@pytest.fixture
def rich_policy() -> Policy:
    return parse_policy(RICH_POLICY)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "audit.sqlite"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
