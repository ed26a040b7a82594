"""What an operator watches: liveness, readiness and Prometheus metrics, and a Tableau session that other
processes keep signing out.

Routes (on the HTTP listener; in stdio mode on the admin API's loopback listener), without a token:

- ``/healthz``: the process answers (liveness).
- ``/readyz``: 200 when the policy is loaded, the audit store answers, and the Tableau session is signed in;
  503 otherwise, with each check's state. A session signed out again and again (another process signs in
  with the same PAT: Tableau keeps one session per PAT) is reported as ``contended``.
- ``/metrics``: Prometheus text from prometheus_client, one registry per server. Labels carry only tool
  names the registry knows (an unknown name is ``(unknown)``), outcomes, and HTTP status codes: never
  arguments, principals, paths or anything else a caller wrote.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

CONTENTION_WINDOW_S = 600.0  # re-sign-ins counted over the last ten minutes
CONTENTION_THRESHOLD = 3  # this many re-sign-ins in the window: someone else holds our PAT's session
UNKNOWN_TOOL = "(unknown)"
_SIGN_IN = "/auth/signin"


class SessionWatch:
    """Follows sign-in requests: whether the session is signed in, and whether it is being taken away."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.signed_in = False
        self.last_error: str | None = None
        self.sign_ins = 0
        self._re_sign_ins: deque[float] = deque()
        self._warned = False

    def observe(self, event: Any) -> None:
        if event.method != "POST" or not event.path.endswith(_SIGN_IN):
            if event.status == 401:  # the session was invalidated: a re-sign-in follows
                self.signed_in = False
            return
        if event.status != 200:
            self.signed_in, self.last_error = False, f"sign-in answered {event.status or event.error}"
            return
        self.signed_in, self.last_error = True, None
        self.sign_ins += 1
        if self.sign_ins > 1:
            self._note_re_sign_in()

    def _note_re_sign_in(self) -> None:
        now = self.clock()
        self._re_sign_ins.append(now)
        while self._re_sign_ins and self._re_sign_ins[0] < now - CONTENTION_WINDOW_S:
            self._re_sign_ins.popleft()
        if self.contended and not self._warned:
            self._warned = True
            log.warning(
                "Tableau signed this server out %d times in %d minutes: another process is signing in with the "
                "same personal access token (Tableau keeps one session per PAT). Give each replica its own PAT, "
                "or use a connected app.", len(self._re_sign_ins), CONTENTION_WINDOW_S // 60,
            )
        elif not self.contended:
            self._warned = False

    @property
    def recent_re_sign_ins(self) -> int:
        return len(self._re_sign_ins)

    @property
    def contended(self) -> bool:
        return len(self._re_sign_ins) >= CONTENTION_THRESHOLD

    def state(self) -> dict[str, Any]:
        status = "contended" if self.contended else ("signed_in" if self.signed_in else "signed_out")
        state: dict[str, Any] = {"status": status, "sign_ins": self.sign_ins,
                                 "re_sign_ins_last_10_min": self.recent_re_sign_ins}
        if self.contended:
            state["hint"] = ("another process signs in with this server's PAT; give each replica its own PAT "
                             "or use a connected app")
        if self.last_error:
            state["error"] = self.last_error
        return state


class Operations:
    """One server's metrics registry and session watch; fed by the governance adapter."""

    def __init__(self, tool_names: Iterable[str]) -> None:
        self.tools = frozenset(tool_names)
        self.registry = CollectorRegistry(auto_describe=True)
        self.session = SessionWatch()
        self.calls = Counter("steward_tool_calls", "Tool calls by tool and outcome.", ["tool", "outcome"],
                             registry=self.registry)
        self.tableau_requests = Counter("steward_tableau_requests", "HTTP requests to Tableau by status code.",
                                        ["status"], registry=self.registry)
        self.retries = Counter("steward_tableau_retries", "Tableau request attempts after the first (retries "
                               "and replays after a re-sign-in).", registry=self.registry)
        self.rate_limited = Counter("steward_tableau_rate_limited", "Tableau answers 429 (rate limited).",
                                    registry=self.registry)
        self.re_sign_ins = Counter("steward_tableau_re_sign_ins", "Sign-ins after the first (the session "
                                   "expired or was taken by another sign-in with the same PAT).",
                                   registry=self.registry)
        self.audit_append = Histogram(
            "steward_audit_append_seconds", "Time to commit one audit write transaction.", registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
        )
        self.pending = Gauge("steward_pending_approvals", "Approval requests waiting for a decision (NaN while "
                             "the store cannot be read).", registry=self.registry)

    def tool_label(self, tool: str) -> str:
        """A tool name the registry knows, else '(unknown)': a caller's made-up name never becomes a label.
        Resource and prompt reads count as 'resource' and 'prompt' (their URIs can carry a caller's text)."""
        if tool in self.tools:
            return tool
        kind = tool.split(":", 1)[0]
        return kind if kind in ("resource", "prompt") and ":" in tool else UNKNOWN_TOOL

    def tool_call(self, tool: str, outcome: str) -> None:
        self.calls.labels(tool=self.tool_label(tool), outcome=outcome).inc()

    def tableau_request(self, event: Any) -> None:
        self.tableau_requests.labels(status=str(event.status) if event.status else "no_response").inc()
        if event.attempt > 1:
            self.retries.inc()
        if event.status == 429:
            self.rate_limited.inc()
        before = self.session.sign_ins
        self.session.observe(event)
        if self.session.sign_ins > max(before, 1):
            self.re_sign_ins.inc()

    def audit_committed(self, seconds: float) -> None:
        self.audit_append.observe(seconds)

    def watch_pending(self, count: Callable[[], int]) -> None:
        def read() -> float:
            try:
                return float(count())
            except Exception:  # noqa: BLE001  the store is away: say so with NaN, never fail the scrape
                return float("nan")

        self.pending.set_function(read)

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)


def health_routes(governance_of: Callable[[], Any]) -> list[Route]:
    """/healthz, /readyz and /metrics; `governance_of()` is None while the server is still starting."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        governance = governance_of()
        if governance is None:
            return JSONResponse({"ready": False, "checks": {"server": "starting"}}, status_code=503)
        checks = await governance.readiness()
        ready = all(check.get("ok") for check in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def metrics(_request: Request) -> Response:
        governance = governance_of()
        if governance is None:
            return Response("server starting\n", status_code=503, media_type="text/plain")
        return Response(governance.operations.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
