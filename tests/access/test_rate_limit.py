"""The client-side rate limit matches Tableau's: a sliding hourly budget plus an AIMD concurrency limit.

The budget's arithmetic is checked on a hand-driven clock (no timing); the back-off on 429s is
driven by the emulator's fault API and read from the limit and the emulator's request log.
"""

from __future__ import annotations

import pytest

from server.config import Settings
from server.tableau import TableauClient
from server.tableau.transport import AdaptiveConcurrency, SlidingWindowBudget, Transport

from .conftest import log_entries, settings_for

pytestmark = pytest.mark.anyio


class HandClock:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_under_the_hourly_budget_is_not_slowed() -> None:
    clock = HandClock()
    budget = SlidingWindowBudget(40_000, clock=clock, sleep=clock.sleep)
    assert [budget.acquire() for _ in range(60)] == [0.0] * 60
    assert clock.slept == [] and budget.in_window() == 60


def test_the_call_past_the_budget_waits_for_the_oldest_call_to_age_out() -> None:
    clock = HandClock()
    budget = SlidingWindowBudget(3, window=3600, clock=clock, sleep=clock.sleep)
    budget.acquire()
    clock.now += 100
    budget.acquire()
    budget.acquire()
    assert budget.acquire() == 3500  # the first call leaves the window 3600 s after it was made
    assert clock.slept == [3500]
    assert budget.in_window() == 3  # the second, the third and the one that waited


def test_shipped_settings_budget_the_hour_and_let_bursts_through() -> None:
    settings = Settings.for_pat("https://tableau.example.com", "", "n", "s")
    transport = Transport(settings)
    assert transport.budget.limit == 40_000 and transport.budget.window == 3600
    assert transport.bucket.rate == 0  # no per-second bucket by default
    assert [transport.budget.acquire() for _ in range(50)] == [0.0] * 50
    assert transport.slots.limit == settings.concurrency == 4
    assert SlidingWindowBudget(0).acquire() == 0.0  # 0 turns the budget off (e.g. Tableau Server)


def test_aimd_halves_once_per_burst_of_429s_and_climbs_back_by_successes() -> None:
    slots = AdaptiveConcurrency(8)
    burst = [slots.acquire() for _ in range(4)]
    for generation in burst:  # four requests of the same burst all answered 429: one decrease
        slots.release(generation, throttled=True)
    assert slots.limit == 4
    slots.release(slots.acquire(), throttled=True)  # a 429 on a request sent after the decrease
    assert slots.limit == 2
    climbed = []
    for _ in range(40):
        slots.release(slots.acquire())
        climbed.append(slots.limit)
    # +1/limit per success: about one whole step per round of `limit` successes, up to the ceiling.
    assert climbed[:12] == [2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5]
    assert climbed == sorted(climbed) and climbed[-1] == 8 and max(climbed) == 8
    assert slots.acquire() == 2  # generations count the decreases


async def test_429s_from_the_emulator_back_off_the_concurrency_and_successes_restore_it(emu) -> None:
    async with TableauClient(settings_for(emu, concurrency=4)) as client:
        slots = client._transport.slots
        emu.control.inject_429(1, retry_after=0)
        await client.list_users()
        assert slots.limit == 2  # halved by the 429; one success (+1/2) is not yet a whole step
        emu.control.inject_429(1)
        await client.list_groups()
        assert slots.limit == 2  # halved to 1.25, then +0.8 for the retry's success
        successes = 0
        while slots.limit < 4 and successes < 20:
            await client.list_users(filters=[("siteRole", "eq", "Viewer")])
            successes += 1
        assert slots.limit == 4 and successes == 6  # additive increase (2.05 + 1/2 + ...), back to the ceiling
    statuses = [e.status for e in log_entries(emu, method="GET") if e.path.endswith(("/users", "/groups"))]
    assert statuses[:4] == [429, 200, 429, 200]  # each 429 was retried, as before
