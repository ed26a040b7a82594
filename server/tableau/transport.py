"""The single choke point for every HTTP request TSC sends on our behalf.

TSC 0.42 takes a `session_factory` and gives every thread its own `requests.Session` from it.
Ours is `StewardSession`, whose `request()` wraps each request TSC makes (paging, job polls,
version negotiation, sign-in, sign-out, redirects) with, in order:

1. the client-side rate limits, shared by all threads: a sliding hour of at most
   `Settings.rate_limit_per_hour` calls (Tableau Cloud's 40,000 per user per site per hour), so bursts
   below it are not slowed at all, and an optional token bucket (`Settings.rate_limit` requests/s, off
   by default);
2. the concurrency limit (`Settings.concurrency` requests in flight, shared), held only while sending,
   adapted to Tableau's answers (AIMD): each 429 halves the requests allowed in flight (once per
   burst of 429s), each success adds back 1/limit, up to `Settings.concurrency`;
3. the request timeout (`Settings.request_timeout`) and TLS verification settings;
4. the observer hook: one `RequestEvent` per attempt, with the operation id of the caller;
5. one re-sign-in on 401 (single-flight, done by the client's `reauthenticate` callback) and one
   replay with the new `x-tableau-auth` header;
6. retries of 429 / 502 / 503 / 504 and connection resets with exponential backoff and full jitter,
   honouring Retry-After (seconds or HTTP date) and Tableau Cloud's "retry after N minutes" body
   text, under an overall deadline (`Settings.retry_deadline`) - for retry-safe requests only.

Retry-safe requests (see `is_retry_safe`): GET/HEAD/OPTIONS; sign-in (a new sign-in simply replaces
the session); TSC's project read (a PUT with an empty `<project/>` body, which changes nothing); and
extract-refresh POSTs (a duplicate is answered 409093 "already queued", which the client turns into
"attach to the queued job"). Everything else - other PUTs (job cancel, permission and item updates),
POSTs (group membership), DELETEs, PATCHes - fails at once with a clear error: repeating a write
whose first attempt may have been applied is the caller's decision, not ours. Read timeouts are not
retried either (the request may still be running on the server, and a slow server rarely speeds up).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import requests
import requests.auth
from requests.cookies import extract_cookies_to_jar
from requests.models import PreparedRequest
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict

from server.config import Settings

from .errors import RateLimited, TableauUnavailable, _is_connect_failure, retry_hint_seconds

log = logging.getLogger(__name__)

# The operation id of the current task/thread; anyio.to_thread.run_sync copies the context into the
# worker thread, so requests made there carry the id of the `operation()` that started them.
OPERATION_ID: ContextVar[str | None] = ContextVar("tableau_operation_id", default=None)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
AUTH_HEADER = "x-tableau-auth"
_SECRET_KEYS = re.compile(r"(secret|password|passwd|token|jwt|credential|auth)", re.IGNORECASE)
_REFRESH_PATH = re.compile(r"/sites/[^/]+/(workbooks|datasources)/[^/]+/refresh/?$")
_PROJECT_PATH = re.compile(r"/sites/[^/]+/projects/[^/]+/?$")
_EMPTY_PROJECT_BODY = re.compile(rb"^\s*<tsRequest>\s*<project\s*/>\s*</tsRequest>\s*$")


@dataclass(frozen=True)
class RequestEvent:
    """One HTTP request attempt, as seen by observers (the audit log, tests, benchmarks).

    `path` is the URL path without scheme/host (percent-decoded); `query` the query string with any
    secret-looking parameter redacted; `status` None when no response arrived (then `error` names
    the failure, e.g. "ConnectionError"); `attempt` counts from 1 within one logical request
    (retries and the replay after a re-sign-in increase it); `operation_id` is the id of the
    enclosing `TableauClient.operation()`, or None.
    """

    method: str
    path: str
    query: str
    status: int | None
    duration_ms: float
    attempt: int
    operation_id: str | None
    error: str | None = None


Observer = Callable[[RequestEvent], None]


class TokenBucket:
    """A thread-safe token bucket: `rate` tokens per second, bursts up to `capacity`.

    `acquire()` reserves a token and sleeps until it is due, so waiting callers queue fairly.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, capacity if capacity is not None else rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping if needed; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait


class SlidingWindowBudget:
    """At most `limit` calls in any `window` seconds, shared by all threads; `limit` 0 means no budget.

    This is how Tableau Cloud counts (40,000 calls per user per site per hour), so a burst of any size
    under the budget goes out at once, and only a client that would exceed Tableau's own count waits,
    until its oldest call in the window ages out. Memory is one float per call in the window.
    """

    def __init__(
        self,
        limit: int,
        window: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._calls: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Count one call, first sleeping until the window has room; returns the seconds waited."""
        if self.limit <= 0:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and self._calls[0] <= now - self.window:
                    self._calls.popleft()
                if len(self._calls) < self.limit:
                    self._calls.append(now)
                    return waited
                wait = self._calls[0] + self.window - now
            self._sleep(wait)
            waited += wait

    def in_window(self) -> int:
        """How many calls the current window holds."""
        with self._lock:
            now = self._clock()
            return sum(1 for t in self._calls if t > now - self.window)


class AdaptiveConcurrency:
    """A shared limit on requests in flight that backs off when Tableau answers 429 (AIMD).

    The limit starts at `ceiling`. A 429 halves it (never below 1), but only once per burst: a 429 from
    a request sent before the last decrease was already answered for. Each success adds 1/limit, so
    a full round of successful requests at the current limit raises it by one, back up to `ceiling`.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._limit = float(ceiling)
        self._in_flight = 0
        self._generation = 0  # bumped by every decrease
        self._changed = threading.Condition()

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    def acquire(self) -> int:
        """Wait for a free slot; returns the generation to hand back to `release`."""
        with self._changed:
            while self._in_flight >= self.limit:
                self._changed.wait()
            self._in_flight += 1
            return self._generation

    def release(self, generation: int, *, throttled: bool = False) -> None:
        with self._changed:
            self._in_flight -= 1
            if throttled:
                if generation == self._generation:
                    self._limit = max(1.0, self._limit / 2)
                    self._generation += 1
                    log.info("Tableau answered 429: %d request(s) in flight allowed now", self.limit)
            elif self._limit < self.ceiling:
                self._limit = min(float(self.ceiling), self._limit + 1 / self._limit)
            self._changed.notify_all()


def is_retry_safe(method: str, path: str, body: object) -> bool:
    """Whether repeating this request cannot change anything beyond what one success would."""
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS"):
        return True
    if method == "POST" and (path.endswith("/auth/signin") or _REFRESH_PATH.search(path)):
        return True
    if method == "PUT" and _PROJECT_PATH.search(path):
        raw = body.encode() if isinstance(body, str) else body
        return isinstance(raw, (bytes, bytearray)) and bool(_EMPTY_PROJECT_BODY.match(bytes(raw)))
    return False


def _is_auth_path(path: str) -> bool:
    return path.endswith(("/auth/signin", "/auth/signout", "/serverInfo"))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return max(0.0, (when - current).total_seconds())


def scrub_query(query: str) -> str:
    """The query string with secret-looking parameter values replaced (Tableau sends none, but be safe)."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_KEYS.search(key) for key, _ in pairs):
        return query
    return urlencode([(k, "REDACTED" if _SECRET_KEYS.search(k) else v) for k, v in pairs])


def _header(headers: object, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():  # type: ignore[call-overload]
        if str(key).lower() == name:
            return value
    return None


def _with_header(headers: object, name: str, value: str) -> dict:
    updated = {k: v for k, v in dict(headers or {}).items() if str(k).lower() != name}  # type: ignore[call-overload]
    updated[name] = value
    return updated


class Transport:
    """State shared by every thread's StewardSession: limits, observers and the re-sign-in hook."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = TokenBucket(settings.rate_limit)
        self.budget = SlidingWindowBudget(settings.rate_limit_per_hour)
        self.slots = AdaptiveConcurrency(settings.concurrency)
        self._observers: tuple[Observer, ...] = ()
        self._observer_lock = threading.Lock()
        self._failed_observers: set[str] = set()
        # Set by the client: takes the token a request was rejected with, returns the token to use now.
        self.reauthenticate: Callable[[str], str] | None = None
        self._random = random.Random()

    # -- observers ---------------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        with self._observer_lock:
            self._observers = self._observers + (observer,)

    def remove_observer(self, observer: Observer) -> None:
        with self._observer_lock:
            self._observers = tuple(o for o in self._observers if o != observer)

    def emit(self, event: RequestEvent) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # an observer must never break a request
                key = repr(observer)
                if key not in self._failed_observers:
                    self._failed_observers.add(key)
                    log.exception("request observer %r failed (further failures are logged at debug level)", observer)
                else:
                    log.debug("request observer %r failed again", observer, exc_info=True)

    # -- sessions ----------------------------------------------------------------------------

    def session_factory(self) -> StewardSession:
        """TSC's `session_factory`: may be called once per thread, concurrently."""
        return StewardSession(self)

    # -- backoff -----------------------------------------------------------------------------

    def backoff(self, failures: int) -> float:
        """Full-jitter exponential backoff for the `failures`-th consecutive failure (1-based)."""
        s = self.settings
        ceiling = min(s.retry_max_delay, s.retry_base_delay * (2 ** max(0, failures - 1)))
        return self._random.uniform(0, ceiling)


# What TSC passes for a GET (plus the timeout and verify set below): such a request is sent by _send_get.
_PLAIN_GET_KWARGS = frozenset({"params", "headers", "timeout", "verify", "allow_redirects"})


class _NoNetrcAuth(requests.auth.AuthBase):
    """Session auth that adds nothing. Tableau is signed in to by token; with no session auth set,
    requests would look for the server in ~/.netrc on every request (two file lookups, each a
    GIL hand-off) and send any password it found there to Tableau as Basic auth."""

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        return request


class StewardSession(requests.Session):
    """A requests.Session whose `request()` applies the transport's limits, retries and observers."""

    def __init__(self, transport: Transport) -> None:
        super().__init__()
        self.auth = _NoNetrcAuth()
        self._transport = transport
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        # requests reads the proxy and CA-bundle variables (walking os.environ twice) on every request:
        # about a tenth of a small request's client CPU. A running server's environment does not change, so
        # the answer is kept per host and per caller-given settings.
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify, cert)
        found = self._environment.get(key)
        if found is None:
            found = self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        return dict(found)

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
        transport = self._transport
        settings = transport.settings
        method = method.upper()
        if args:  # TSC always passes keywords; keep positional calls working the way requests does
            names = ("params", "data", "headers", "cookies", "files", "auth", "timeout", "allow_redirects")
            kwargs.update(zip(names, args))
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = settings.request_timeout
        if kwargs.get("verify") is None:
            kwargs["verify"] = settings.verify
        streamed = bool(kwargs.pop("stream", False))

        prepared = PreparedRequest()
        prepared.prepare_url(url, kwargs.get("params"))  # type: ignore[arg-type]
        parts = urlsplit(prepared.url or url)
        path, query = unquote(parts.path), scrub_query(parts.query)
        safe = is_retry_safe(method, path, kwargs.get("data"))
        plain_get = (
            method == "GET" and kwargs.keys() <= _PLAIN_GET_KWARGS and kwargs.get("allow_redirects") is False
            and not self.params and not any(self.hooks.values())
        )
        deadline = time.monotonic() + settings.retry_deadline
        operation_id = OPERATION_ID.get()

        attempt = 0
        failures = 0
        reauthenticated = False
        while True:
            attempt += 1
            transport.budget.acquire()
            transport.bucket.acquire()
            started = time.perf_counter()
            generation = transport.slots.acquire()
            try:
                if plain_get:
                    response = self._send_get(prepared, kwargs)
                else:
                    response = super().request(method, url, stream=True, **kwargs)  # type: ignore[arg-type]
                if not streamed:
                    _read_whole(response)
            except requests.exceptions.RequestException as exc:
                transport.slots.release(generation)
                elapsed = (time.perf_counter() - started) * 1000
                transport.emit(RequestEvent(method, path, query, None, round(elapsed, 2), attempt, operation_id,
                                            type(exc).__name__))
                retryable = (
                    safe
                    and isinstance(exc, requests.exceptions.ConnectionError)
                    and not isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError))
                    and not _is_connect_failure(exc)
                )
                if not retryable:
                    raise
                failures += 1
                delay = transport.backoff(failures)
                if time.monotonic() + delay > deadline:
                    raise
                log.info("connection to %s lost (%s); retry %d in %.2fs", path, type(exc).__name__, failures, delay)
                time.sleep(delay)
                continue

            except BaseException:
                transport.slots.release(generation)
                raise
            status = response.status_code
            transport.slots.release(generation, throttled=status == 429)
            elapsed = (time.perf_counter() - started) * 1000
            transport.emit(RequestEvent(method, path, query, status, round(elapsed, 2), attempt, operation_id))

            if status == 401 and not reauthenticated and not _is_auth_path(path) and transport.reauthenticate:
                sent_token = _header(kwargs.get("headers"), AUTH_HEADER)
                if sent_token:
                    response.close()
                    reauthenticated = True
                    new_token = transport.reauthenticate(sent_token)
                    kwargs["headers"] = _with_header(kwargs.get("headers"), AUTH_HEADER, new_token)
                    continue

            if status not in RETRY_STATUSES:
                return response

            hint = parse_retry_after(response.headers.get("Retry-After"))
            if hint is None and status == 429:
                hint = retry_hint_seconds(_text(response))
            if not safe:
                response.close()
                raise self._give_up(method, path, status, hint, attempt, retried=False)
            failures += 1
            delay = transport.backoff(failures)
            if hint is not None:
                delay = hint + transport._random.uniform(0, settings.retry_base_delay)
            if time.monotonic() + delay > deadline:
                response.close()
                raise self._give_up(method, path, status, hint if hint is not None else delay, attempt, retried=True)
            log.info("%s %s answered %d; retry %d in %.2fs", method, path, status, failures, delay)
            response.close()
            time.sleep(delay)

    def _send_get(self, prepared: PreparedRequest, kwargs: dict[str, Any]) -> requests.Response:
        """A plain GET (TSC's list pages): the request Session.request would build, sent to the same adapter.

        Session.request would prepare the URL a second time, look up ~/.netrc, merge hooks and walk
        redirects that TSC turns off: about a third of a request's client CPU, every list page paying
        it under the GIL (BENCHMARKS.md, issue 15). Headers, cookies (sent and kept), proxies, TLS
        verification and client certificates are taken as Session.request takes them.
        """
        prepared.prepare_method("GET")
        prepared.prepare_headers(merge_setting(kwargs.get("headers"), self.headers, dict_class=CaseInsensitiveDict))
        if self.cookies:
            prepared.prepare_cookies(self.cookies)
        prepared.prepare_body(None, None)
        prepared.prepare_auth(self.auth, prepared.url or "")
        prepared.prepare_hooks({})
        url = prepared.url or ""
        settings = self.merge_environment_settings(url, {}, True, kwargs.get("verify"), None)
        response = self.get_adapter(url).send(
            prepared, stream=True, timeout=kwargs.get("timeout"), verify=settings["verify"], cert=settings["cert"],
            proxies=settings["proxies"],
        )
        if response.headers.get("Set-Cookie"):
            extract_cookies_to_jar(self.cookies, prepared, response.raw)
        return response

    def _give_up(
        self, method: str, path: str, status: int, wait: float | None, attempts: int, *, retried: bool
    ) -> RateLimited | TableauUnavailable:
        server = self._transport.settings.server_url
        seconds = max(1, round(wait)) if wait is not None else None
        if retried:
            tried = f"after {attempts} attempts within the {self._transport.settings.retry_deadline:g} s retry deadline"
        else:
            tried = (
                f"and the {method} request was not repeated automatically because it changes data; check "
                "whether it took effect before repeating it"
            )
        if status == 429:
            when = f"retry in about {seconds} s" if seconds else "retry in a minute"
            return RateLimited(
                f"Tableau at {server} is rate limiting requests (HTTP 429) {tried}; {when}.",
                status=429,
                code="429000",
                retry_after=float(seconds) if seconds else None,
            )
        when = f" in about {seconds} s" if seconds else " in a minute"
        return TableauUnavailable(
            f"Tableau at {server} is unavailable (HTTP {status} for {method} {path}) {tried}; try again{when}.",
            status=status,
            retry_after=float(seconds) if seconds else None,
        )


def _read_whole(response: requests.Response) -> None:
    """Read the body in one read, not the 10 KB chunks `Response.content` reads it in.

    Each chunk is a socket read that gives the GIL away and must win it back: while another thread
    parses a page, every chunk waits out a switch interval (5 ms), so a 220 KB list page read in 22
    chunks took 2-3x as long as the same page read at once (BENCHMARKS.md, issue 15). `iter_content`
    maps urllib3's errors to requests' as `content` does; `_content` is where `content` keeps the body
    it has read (requests has no public setter, and has kept that attribute since 1.0).
    """
    try:
        response._content = b"".join(response.iter_content(None))
    except BaseException:
        response.close()
        raise


def _text(response: requests.Response) -> str:
    try:
        return response.text[:2000]
    except (LookupError, UnicodeError):  # pragma: no cover - a charset Python does not know, an undecodable body
        return ""
