"""The emulator as an ASGI application.

One request goes through: control API (`/_emulator/...`, never delayed, faulted or logged) →
injected latency → injected fault → job clock → route → session → handler → XML, or JSON when
`Accept` asks for it (`jsonout`) → optional XSD check → request log. Handlers run synchronously on the event loop under `Emulator.lock`, so they see a
consistent `SiteState`; tests that touch the state from their own thread take the same lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import threading
import time
import traceback
from typing import Any
from urllib.parse import parse_qs

import orjson

from . import (
    handlers,  # noqa: F401  (registers every route)
    jsonout,
)
from . import model as m
from .auth import Sessions
from .control_api import handle_control
from .errors import ApiError
from .faults import Control, Fault, LogEntry
from .jobs import JobClock
from .routing import Call, Reply, router
from .validation import XsdFailure, validate
from .xmlout import document, error_document

log = logging.getLogger("emulator")

_API_PATH = re.compile(r"^/api/([^/]+)(/.*)?$")
_XML_HEADERS = [(b"content-type", b"application/xml;charset=utf-8")]


class Emulator:
    """State, sessions, knobs and the job clock of one emulated site, served as ASGI."""

    def __init__(
        self,
        state: m.SiteState,
        *,
        latency_ms: float = 0,
        api_version: str = "3.24",
        session_idle_seconds: float = 14400,
        job_speed: float = 1.0,
        validate_xsd: bool = False,
        check_json: bool = False,
    ) -> None:
        self.state = state
        self.api_version = api_version
        self.sessions = Sessions(session_idle_seconds)
        self.clock = JobClock(state, job_speed)
        self.control = Control(latency_ms=float(latency_ms), job_speed=float(job_speed))
        self.control.bind(expire_sessions=self.sessions.expire_all, set_job_speed=self.clock.set_speed)
        self.validate_xsd = validate_xsd
        self.xsd_failures: list[XsdFailure] = []
        # With check_json, every successful GET is rendered in both formats and compared (tests).
        self.check_json = check_json
        self.json_mismatches: list[JsonMismatch] = []
        self.handler_errors: list[str] = []  # unexpected exceptions (emulator bugs), for test teardown
        self.lock = threading.RLock()

    @property
    def request_log(self) -> list[LogEntry]:
        return self.control.get_request_log()

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        method: str = scope["method"]
        path: str = scope["path"]
        query_string = scope.get("query_string", b"").decode("latin-1")

        if path.startswith("/_emulator/") or path == "/_emulator":
            status, payload = handle_control(self, method, path, body)
            await _send(send, status, [(b"content-type", b"application/json")], json.dumps(payload).encode())
            return

        started = time.perf_counter()
        if self.control.latency_ms > 0:
            await asyncio.sleep(self.control.latency_ms / 1000.0)
        fault = self.control.take_fault()
        if fault is not None:
            status, headers, payload = _fault_response(fault, dict(scope.get("headers") or []))
        else:
            status, headers, payload = self._dispatch(scope, method, path, query_string, body)
        if self.validate_xsd and payload and _is_xml(headers):
            error = validate(payload)
            if error is not None:
                self.xsd_failures.append(XsdFailure(method, path, status, error))
                log.warning("response to %s %s fails the XSD: %s", method, path, error)
        # Logged before sending, so a client that has its answer always finds the entry in the log.
        response_format = "json" if wants_json(dict(scope.get("headers") or []).get(b"accept", b"")) else "xml"
        self.control.record(
            LogEntry(
                method, path, query_string, status, round((time.perf_counter() - started) * 1000, 2), response_format
            )
        )
        await _send(send, status, headers, payload)

    def _dispatch(
        self, scope: dict[str, Any], method: str, path: str, query_string: str, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers = dict(scope.get("headers") or [])
        as_json = wants_json(headers.get(b"accept", b""))
        try:
            reply = self._handle(scope, headers, method, path, query_string, body, as_json)
        except ApiError as err:
            return err.status, *_error(as_json, err.code, err.summary, err.detail)
        except Exception:  # noqa: BLE001  a handler bug: answer like Tableau would, keep serving
            trace = traceback.format_exc()
            self.handler_errors.append(f"{method} {path}\n{trace}")
            log.error("emulator handler failed for %s %s\n%s", method, path, trace)
            return 500, *_error(as_json, "500000", "Internal Server Error", "The emulator failed.")
        extra = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        if reply.body is None and reply.json is None:
            return reply.status, extra, b""
        if as_json:
            payload = jsonout.dumps(reply.json if reply.json is not None else jsonout.xml_to_json(reply.body or ""))
            return reply.status, [(b"content-type", jsonout.JSON_CONTENT_TYPE), *extra], payload
        return reply.status, [*_XML_HEADERS, *extra], document(reply.body or "")

    def _handle(
        self,
        scope: dict[str, Any],
        headers: dict[bytes, bytes],
        method: str,
        path: str,
        query_string: str,
        body: bytes,
        as_json: bool,
    ) -> Reply:
        found = _API_PATH.match(path)
        if found is None:
            raise ApiError(404, "404003", "Resource Not Found", f"'{path}' is not a REST API path.")
        route, params = router.match(method, found.group(2) or "/")
        call = Call(
            emu=self,
            method=method,
            path=path,
            query=parse_qs(query_string, keep_blank_values=True),
            params=params,
            body=body,
            base_url=_base_url(scope),
            token=headers.get(b"x-tableau-auth", b"").decode("latin-1") or None,
            wants_json=as_json,
            json_body=b"json" in headers.get(b"content-type", b"").lower(),
        )
        with self.lock:
            self.clock.advance()
            if route.auth:
                call.session = self.sessions.touch(call.token)
                call.user = self.state.users.get(call.session.user_id)
                if call.user is None:
                    raise ApiError(
                        401, "401002", "Unauthorized Access", "The session's user no longer exists."
                    )
            site = params.get("site")
            if site is not None and site != self.state.id:
                raise ApiError(404, "404000", "Resource Not Found", f"Site '{site}' could not be found.")
            reply = route.handler(call)
            if self.check_json and method == "GET" and reply.status == 200:
                # Same state, same lock: render the other format too and compare what they carry.
                other = route.handler(dataclasses.replace(call, wants_json=not as_json))
                xml_reply, json_reply = (other, reply) if as_json else (reply, other)
                self._compare_json(method, path, query_string, xml_reply, json_reply)
            return reply

    def _compare_json(self, method: str, path: str, query: str, xml_reply: Reply, json_reply: Reply) -> None:
        if xml_reply.body is None:
            return
        if json_reply.json is not None:  # through bytes: remembered items are serialised fragments
            answer = orjson.loads(jsonout.dumps(json_reply.json))
        else:
            answer = jsonout.xml_to_json(json_reply.body or "")
        problem = jsonout.mismatch(xml_reply.body, answer)
        if problem is not None:
            self.json_mismatches.append(JsonMismatch(method, path, query, problem))
            log.warning("JSON answer to %s %s differs from its XML: %s", method, path, problem)


@dataclasses.dataclass(frozen=True)
class JsonMismatch:
    method: str
    path: str
    query: str
    problem: str


def wants_json(accept: bytes) -> bool:
    """True when `Accept` prefers application/json to XML (TSC sends `*/*`: XML)."""
    accept = accept.lower()
    json_at = accept.find(b"application/json")
    if json_at < 0:
        return False
    xml_at = accept.find(b"xml")
    return xml_at < 0 or json_at < xml_at


def _error(as_json: bool, code: str, summary: str, detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    if as_json:
        return [(b"content-type", jsonout.JSON_CONTENT_TYPE)], jsonout.error_json(code, summary, detail)
    return list(_XML_HEADERS), error_document(code, summary, detail)


def _is_xml(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"content-type" and b"xml" in value for name, value in headers)


def _base_url(scope: dict[str, Any]) -> str:
    server = scope.get("server") or ("127.0.0.1", 80)
    return f"{scope.get('scheme', 'http')}://{server[0]}:{server[1]}"


def _fault_response(fault: Fault, request_headers: dict[bytes, bytes]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers: list[tuple[bytes, bytes]] = []
    if fault.retry_after is not None:
        headers.append((b"retry-after", fault.retry_after.encode()))
    if fault.status == 429 and fault.code is None:
        # Tableau Cloud's concurrency limiter answers with HTML (TSC: NonXMLResponseError).
        page = (
            b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>429 Too Many Requests</title></head>'
            b"<body><h1>Too Many Requests</h1><p>Concurrent request limit exceeded.</p></body></html>\n"
        )
        return 429, [(b"content-type", b"text/html")] + headers, page
    if fault.code is None:
        # A 5xx from an overloaded proxy: not XML, so TSC raises InternalServerError without parsing.
        return fault.status, [(b"content-type", b"text/plain")], b"Service Unavailable (emulated fault)\n"
    detail = "Too many requests."
    if fault.body_hint_minutes is not None:
        detail = f"Too many requests for 'api.rest'. Please retry after {fault.body_hint_minutes} minutes."
    content_headers, payload = _error(
        wants_json(request_headers.get(b"accept", b"")), fault.code, "Too Many Requests", detail
    )
    return fault.status, content_headers + headers, payload


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], payload: bytes) -> None:
    all_headers = list(headers) + [(b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": payload})
