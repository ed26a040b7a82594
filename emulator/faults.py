"""Fault injection and the other runtime knobs, shared by the control API and `EmulatorServer.control`.

Faults are decided per request before authentication, the way a gateway or load balancer in front
of Tableau would answer: a 429 (XML `429000`, with or without `Retry-After`, optionally with the
"Please retry after N minutes" body hint Tableau Cloud sends) or a 5xx (non-XML body, as an
overloaded proxy would). Control-API calls themselves are never faulted, delayed or logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.utils import formatdate
from typing import Any


@dataclass
class Fault:
    status: int
    code: str | None = None  # XML error code; None means a plain-text body
    retry_after: str | None = None
    body_hint_minutes: int | None = None


@dataclass
class LogEntry:
    method: str
    path: str
    query: str
    status: int
    duration_ms: float
    response_format: str = "xml"  # "json" when Accept asked for JSON

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _RateLimit:
    every: int  # a 429 for every Nth request; 0 disables
    retry_after: str | None = None
    seen: int = 0


class Control:
    """The emulator's runtime knobs. All methods are thread-safe (tests call them from another thread)."""

    def __init__(self, latency_ms: float = 0.0, job_speed: float = 1.0) -> None:
        self.latency_ms = float(latency_ms)
        self._job_speed = float(job_speed)
        self._lock = threading.Lock()
        self._pending: list[Fault] = []
        self._rate: _RateLimit | None = None
        self._log: list[LogEntry] = []
        # Set by the app: the control object owns neither the session table nor the job clock.
        self._expire_hook: Callable[[], int] | None = None
        self._speed_hook: Callable[[float], None] | None = None

    def bind(self, expire_sessions: Callable[[], int], set_job_speed: Callable[[float], None]) -> None:
        """Connect the knobs to the session table and the job clock they steer."""
        self._expire_hook = expire_sessions
        self._speed_hook = set_job_speed

    @property
    def job_speed(self) -> float:
        return self._job_speed

    @job_speed.setter
    def job_speed(self, speed: float) -> None:
        self.set_job_speed(speed)

    # -- latency ------------------------------------------------------------------------------

    def set_latency(self, ms: float) -> None:
        if ms < 0:
            raise ValueError("latency must be >= 0")
        self.latency_ms = float(ms)

    # -- 429 ----------------------------------------------------------------------------------

    def inject_429(
        self,
        count: int = 1,
        retry_after: int | str | None = None,
        body_hint: bool = False,
        html: bool = False,
    ) -> None:
        """The next `count` API requests answer 429 with XML code 429000.

        `retry_after`: None (no header), seconds (int), an HTTP-date string sent verbatim, or the
        string "date" for an HTTP-date 60 s from now.
        `body_hint`: add Tableau Cloud's "Please retry after N minutes" to the error detail.
        `html`: answer with an HTML page instead, like Tableau Cloud's concurrency limiter
        (TSC then raises NonXMLResponseError).
        """
        header = _retry_after_header(retry_after)
        minutes = max(1, round(_seconds_of(retry_after) / 60)) if body_hint else None
        with self._lock:
            code = None if html else "429000"
            self._pending.extend(Fault(429, code, header, minutes) for _ in range(count))

    def rate_429(self, every: int, retry_after: int | str | None = None) -> None:
        """Answer every `every`-th API request with a 429 until `rate_429(0)` turns it off."""
        with self._lock:
            self._rate = _RateLimit(every, _retry_after_header(retry_after)) if every > 0 else None

    # -- 5xx ----------------------------------------------------------------------------------

    def inject_5xx(self, count: int = 1, status: int = 503) -> None:
        if not 500 <= status <= 599:
            raise ValueError("status must be a 5xx code")
        with self._lock:
            self._pending.extend(Fault(status) for _ in range(count))

    def clear_faults(self) -> None:
        with self._lock:
            self._pending.clear()
            self._rate = None

    def take_fault(self) -> Fault | None:
        with self._lock:
            if self._pending:
                return self._pending.pop(0)
            if self._rate is not None:
                self._rate.seen += 1
                if self._rate.seen % self._rate.every == 0:
                    return Fault(429, "429000", self._rate.retry_after)
        return None

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._pending)

    # -- sessions and jobs --------------------------------------------------------------------

    def expire_sessions(self) -> int:
        """End every session now; the next call with an old token gets 401002. Returns how many ended."""
        return self._expire_hook() if self._expire_hook else 0

    def set_job_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("job speed must be > 0")
        if self._speed_hook:
            self._speed_hook(float(speed))  # lets the job clock bank elapsed time at the old speed
        self._job_speed = float(speed)

    # -- request log --------------------------------------------------------------------------

    def record(self, entry: LogEntry) -> None:
        with self._lock:
            self._log.append(entry)

    def get_request_log(self) -> list[LogEntry]:
        with self._lock:
            return list(self._log)

    def reset_request_log(self) -> None:
        with self._lock:
            self._log.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "job_speed": self.job_speed,
                "pending_faults": len(self._pending),
                "rate_429_every": self._rate.every if self._rate else 0,
                "logged_requests": len(self._log),
            }


def _seconds_of(retry_after: int | str | None) -> float:
    if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool):
        return float(retry_after)
    return 60.0


def _retry_after_header(retry_after: int | str | None) -> str | None:
    if retry_after is None:
        return None
    if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool):
        return str(int(retry_after))
    if isinstance(retry_after, str) and retry_after.strip().isdigit():
        return retry_after.strip()
    if retry_after == "date":
        return formatdate(time.time() + 60, usegmt=True)
    return str(retry_after)  # an HTTP-date given verbatim
