"""The `/_emulator/...` control API: JSON in, JSON out, no authentication (it is a local test tool).

Routes (see docs/EMULATOR.md for curl examples):
  GET    /_emulator/state                 knobs and counters
  GET    /_emulator/latency               {"ms": 0}
  PUT    /_emulator/latency               {"ms": 50}
  POST   /_emulator/faults/429            {"count": 2, "retry_after": 30 | "date" | "<HTTP-date>" | null,
                                           "body_hint": false, "html": false}
  POST   /_emulator/faults/429/rate       {"every": 10, "retry_after": 5}   ("every": 0 turns it off)
  POST   /_emulator/faults/5xx            {"count": 1, "status": 503}
  DELETE /_emulator/faults                clear every pending fault
  POST   /_emulator/sessions/expire       end every session now
  GET    /_emulator/job-speed             {"speed": 1.0}
  PUT    /_emulator/job-speed             {"speed": 50}
  PUT    /_emulator/site                  {"run_now_enabled": false}
  GET    /_emulator/requests              the request log
  DELETE /_emulator/requests              clear it
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Emulator

Result = tuple[int, Any]


def _json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    value = json.loads(body)
    if not isinstance(value, dict):
        raise TypeError("the body must be a JSON object")
    return value


def _state(emu: Emulator, body: dict[str, Any]) -> Result:
    snapshot = emu.control.snapshot()
    snapshot.update(
        sessions=len(emu.sessions),
        api_version=emu.api_version,
        run_now_enabled=emu.state.run_now_enabled,
        xsd_failures=len(emu.xsd_failures),
    )
    return 200, snapshot


def _get_latency(emu: Emulator, body: dict[str, Any]) -> Result:
    return 200, {"ms": emu.control.latency_ms}


def _put_latency(emu: Emulator, body: dict[str, Any]) -> Result:
    emu.control.set_latency(float(body["ms"]))
    return 200, {"ms": emu.control.latency_ms}


def _inject_429(emu: Emulator, body: dict[str, Any]) -> Result:
    count = int(body.get("count", 1))
    emu.control.inject_429(
        count, body.get("retry_after"), bool(body.get("body_hint", False)), html=bool(body.get("html", False))
    )
    return 200, {"pending_faults": emu.control.pending_faults()}


def _rate_429(emu: Emulator, body: dict[str, Any]) -> Result:
    emu.control.rate_429(int(body.get("every", 0)), body.get("retry_after"))
    return 200, {"every": int(body.get("every", 0))}


def _inject_5xx(emu: Emulator, body: dict[str, Any]) -> Result:
    emu.control.inject_5xx(int(body.get("count", 1)), int(body.get("status", 503)))
    return 200, {"pending_faults": emu.control.pending_faults()}


def _fail_write(emu: Emulator, body: dict[str, Any]) -> Result:
    emu.control.fail_write(int(body.get("nth", 1)), int(body.get("status", 500)), body.get("code"))
    return 200, emu.control.snapshot()


def _clear_faults(emu: Emulator, body: dict[str, Any]) -> Result:
    emu.control.clear_faults()
    return 200, {"pending_faults": 0}


def _expire(emu: Emulator, body: dict[str, Any]) -> Result:
    return 200, {"expired": emu.control.expire_sessions()}


def _get_speed(emu: Emulator, body: dict[str, Any]) -> Result:
    return 200, {"speed": emu.control.job_speed}


def _put_speed(emu: Emulator, body: dict[str, Any]) -> Result:
    emu.control.set_job_speed(float(body["speed"]))
    return 200, {"speed": emu.control.job_speed}


def _put_site(emu: Emulator, body: dict[str, Any]) -> Result:
    with emu.lock:
        if "run_now_enabled" in body:
            emu.state.run_now_enabled = bool(body["run_now_enabled"])
    return 200, {"run_now_enabled": emu.state.run_now_enabled}


def _get_log(emu: Emulator, body: dict[str, Any]) -> Result:
    return 200, [entry.as_dict() for entry in emu.control.get_request_log()]


def _reset_log(emu: Emulator, body: dict[str, Any]) -> Result:
    emu.control.reset_request_log()
    return 200, {"cleared": True}


ROUTES: dict[tuple[str, str], Callable[[Emulator, dict[str, Any]], Result]] = {
    ("GET", "state"): _state,
    ("GET", "latency"): _get_latency,
    ("PUT", "latency"): _put_latency,
    ("POST", "faults/429"): _inject_429,
    ("POST", "faults/429/rate"): _rate_429,
    ("POST", "faults/5xx"): _inject_5xx,
    ("POST", "faults/write"): _fail_write,
    ("DELETE", "faults"): _clear_faults,
    ("POST", "sessions/expire"): _expire,
    ("GET", "job-speed"): _get_speed,
    ("PUT", "job-speed"): _put_speed,
    ("PUT", "site"): _put_site,
    ("GET", "requests"): _get_log,
    ("DELETE", "requests"): _reset_log,
}


def handle_control(emu: Emulator, method: str, path: str, body: bytes) -> Result:
    key = (method, path[len("/_emulator/") :].strip("/"))
    handler = ROUTES.get(key)
    if handler is None:
        known = sorted(f"{m} /_emulator/{p}" for m, p in ROUTES)
        return 404, {"error": f"unknown control route {method} {path}", "routes": known}
    try:
        return handler(emu, _json(body))
    except (KeyError, ValueError, TypeError) as exc:
        return 400, {"error": f"bad request: {exc}"}
