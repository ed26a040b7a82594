"""Transport pieces on their own: token bucket, concurrency limit, Retry-After, retry safety, scrubbing."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from server.config import Settings
from server.tableau.errors import retry_hint_seconds
from server.tableau.transport import (
    TokenBucket,
    Transport,
    is_retry_safe,
    parse_retry_after,
    scrub_query,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_token_bucket_allows_a_burst_then_paces_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(15)]
    assert waits[:10] == [0.0] * 10
    assert waits[10:] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    clock.now = 10.0  # a long pause refills the bucket, but never beyond its capacity
    assert [bucket.acquire() for _ in range(10)] == [0.0] * 10
    assert bucket.acquire() == pytest.approx(0.1)


def test_rate_zero_disables_the_limiter():
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock, sleep=clock.sleep)
    assert all(bucket.acquire() == 0 for _ in range(1000)) and clock.slept == []


def test_retry_after_header_forms():
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 2.5 ") == 2.5
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert retry_hint_seconds("Too many requests for 'api.rest'. Please retry after 29 minutes.") == 29 * 60
    assert retry_hint_seconds("Please retry after 5 seconds") == 5
    assert retry_hint_seconds("Too many requests.") is None


@pytest.mark.parametrize(
    ("method", "path", "body", "safe"),
    [
        ("GET", "/api/3.24/sites/s/workbooks", None, True),
        ("POST", "/api/2.4/auth/signin", b"<tsRequest/>", True),
        ("POST", "/api/3.24/sites/s/workbooks/w/refresh", b"<tsRequest />", True),
        ("POST", "/api/3.24/sites/s/datasources/d/refresh", b"<tsRequest />", True),
        ("PUT", "/api/3.24/sites/s/projects/p", b"<tsRequest><project /></tsRequest>", True),
        ("PUT", "/api/3.24/sites/s/projects/p", b'<tsRequest><project name="x" /></tsRequest>', False),
        ("PUT", "/api/3.24/sites/s/jobs/j", b"", False),
        ("PUT", "/api/3.24/sites/s/workbooks/w/permissions", b"<tsRequest/>", False),
        ("POST", "/api/3.24/sites/s/groups/g/users", b"<tsRequest/>", False),
        ("DELETE", "/api/3.24/sites/s/groups/g/users/u", None, False),
        ("POST", "/api/3.24/auth/signout", b"", False),
    ],
)
def test_retry_safety(method, path, body, safe):
    assert is_retry_safe(method, path, body) is safe


def test_query_scrubbing_keeps_ordinary_queries_verbatim():
    query = "sort=createdAt%3Aasc&pageNumber=2&pageSize=1000&fields=_default_%2Cowner.name"
    assert scrub_query(query) == query
    scrubbed = scrub_query("pageNumber=1&api_token=abc123&password=hunter2")
    assert "abc123" not in scrubbed and "hunter2" not in scrubbed and "pageNumber=1" in scrubbed


def test_concurrency_limit_is_shared_by_every_thread():
    state = {"inflight": 0, "peak": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                state["inflight"] += 1
                state["peak"] = max(state["peak"], state["inflight"])
            time.sleep(0.05)
            with lock:
                state["inflight"] -= 1
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/api/3.24/serverInfo"
        transport = Transport(Settings.for_pat(url.rsplit("/api", 1)[0], "", "n", "s", concurrency=2, rate_limit=0))
        events = []
        transport.add_observer(events.append)

        def worker():
            session = transport.session_factory()  # one session per thread, as TSC does
            for _ in range(3):
                assert session.get(url).status_code == 200

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        httpd.shutdown()
    assert len(events) == 18
    assert state["peak"] <= 2


def test_the_proxy_environment_is_honoured_and_read_once_per_host(monkeypatch):
    """requests reads HTTP(S)_PROXY on every request; the session reads it once per host (a server's
    environment does not change) and still sends through the proxy it names."""
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)  # a forward proxy gets the absolute URL
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        transport = Transport(Settings.for_pat("http://tableau.invalid", "", "n", "s", rate_limit=0))
        session = transport.session_factory()
        assert session.get("http://tableau.invalid/api/3.24/serverInfo").status_code == 200
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # read once: a later change is not picked up
        assert session.get("http://tableau.invalid/api/3.24/serverInfo?again=1").status_code == 200
    finally:
        proxy.shutdown()
    assert seen == ["http://tableau.invalid/api/3.24/serverInfo", "http://tableau.invalid/api/3.24/serverInfo?again=1"]
