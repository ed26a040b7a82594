"""The collector tuning a built server applies (server/heap.py): once per process, and cycles still go."""

from __future__ import annotations

import gc
import weakref

import pytest

from server import heap
from tests.server.conftest import Steward

pytestmark = pytest.mark.anyio


async def test_building_a_server_freezes_the_start_up_heap_and_raises_the_young_threshold(steward: Steward) -> None:
    async with steward.client() as client:
        await client.list_tools()
        frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    assert frozen > 10_000  # the modules, schemas and registry that start-up left alive
    assert threshold[0] >= heap.YOUNG_THRESHOLD
    async with steward.client() as client:  # another server in the same process changes nothing
        await client.list_tools()
    # Not frozen again: the permanent generation only shrinks, as frozen objects are freed by reference counting.
    assert gc.get_threshold() == threshold and gc.get_freeze_count() <= frozen


def test_cycles_made_after_start_up_are_still_collected() -> None:
    heap.tune_collector()

    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None
