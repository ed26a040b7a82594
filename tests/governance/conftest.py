"""Fixtures for the governance tests: a rich test policy, a store path, a controllable clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.governance.policy import Policy, parse_policy
from tests.governance.helpers import RICH_POLICY, FakeClock


@pytest.fixture
def rich_policy() -> Policy:
    return parse_policy(RICH_POLICY)


STORE_BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test using `store_path` runs on both backends, except those marked `sqlite_only` (they
    handle the store's file itself: permissions, deletion, a copy put in its place)."""
    if "store_backend" in metafunc.fixturenames:
        sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("store_backend", ("sqlite",) if sqlite_only else STORE_BACKENDS)


@pytest.fixture
def store_path(tmp_path: Path, store_backend: str, request: pytest.FixtureRequest) -> Path | str:
    """The store: a SQLite file under tmp_path, or a fresh database's URL on the session's cluster."""
    if store_backend == "postgresql":
        return request.getfixturevalue("postgres_cluster").new_database()
    return tmp_path / "store" / "audit.sqlite"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
