"""Fixtures for the access-layer tests: emulators (real sockets, XSD-checked) and Settings for them.

Requests are counted from the emulator's request log; there are no timing assertions.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from emulator.testing import ADMIN_PAT, small_site, start_emulator
from server.config import Settings


def settings_for(emu: Any, pat: tuple[str, str] = ADMIN_PAT, **tunables: Any) -> Settings:
    """Settings for `emu` with fast retries and a higher rate (the policy is the same, the waits shorter)."""
    defaults: dict[str, Any] = dict(
        request_timeout=10, retry_deadline=10, retry_base_delay=0.01, retry_max_delay=0.05, rate_limit=200
    )
    defaults.update(tunables)
    return Settings.for_pat(emu.url, emu.state.content_url, pat[0], pat[1], **defaults)


def log_entries(emu: Any, *, method: str | None = None, path_suffix: str | None = None) -> list[Any]:
    return [
        e
        for e in emu.request_log
        if (method is None or e.method == method) and (path_suffix is None or e.path.endswith(path_suffix))
    ]


def sign_ins(emu: Any) -> int:
    return len(log_entries(emu, method="POST", path_suffix="/auth/signin"))


def wait_for_log(emu: Any, count: int, timeout: float = 5.0) -> list[Any]:
    """The emulator appends a log entry just after sending the response; wait until `count` are in."""
    deadline = time.monotonic() + timeout
    while len(emu.request_log) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return emu.request_log


@pytest.fixture
def emu():
    """The small site (12 workbooks, 3 projects, 4 users, 2 groups) with fast jobs."""
    with start_emulator(small_site(), job_speed=100) as server:
        yield server


@pytest.fixture
def slow_jobs_emu():
    """The small site with jobs at real speed, so a refresh stays queued for a while."""
    with start_emulator(small_site(), job_speed=1) as server:
        yield server


@pytest.fixture(scope="module")
def wide_site_emu():
    """2,350 workbooks: three pages of 1000."""
    with start_emulator(small_site(workbooks=2350), job_speed=100) as server:
        yield server
