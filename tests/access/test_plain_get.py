"""TSC's GETs (the list pages) skip Session.request and go straight to the adapter (`_send_get`). They must
send what Session.request would have sent, keep and send cookies, go through the proxy the environment
names, come back whole (gzip decoded), leave redirects to TSC, and never pick credentials out of ~/.netrc
(neither they nor any other request)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests.exceptions
import requests.sessions

from server.config import Settings
from server.tableau.transport import RequestEvent, StewardSession, Transport

BODY = b'{"workbooks": {"workbook": []}, "pagination": {"pageNumber": "1"}}' * 400  # about 27 KB


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, dict[str, str]]]] = []

    def _answer(self) -> None:
        type(self).seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/cut"):  # promises more than it sends, then hangs up
            self.send_response(200)
            self.send_header("content-length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:1000])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/moved"):
            self.send_response(302)
            self.send_header("location", "/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = gzip.compress(BODY) if "gzip" in self.headers.get("accept-encoding", "") else BODY
        self.send_response(200)
        self.send_header("content-type", "application/json")
        if body is not BODY:
            self.send_header("content-encoding", "gzip")
        if self.path.startswith("/first"):
            self.send_header("set-cookie", "AWSALB=node-2; Path=/")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def _session(url: str) -> tuple[StewardSession, list[RequestEvent]]:
    transport = Transport(Settings.for_pat(url, "", "n", "s", rate_limit=0))
    events: list[RequestEvent] = []
    transport.add_observer(events.append)
    return transport.session_factory(), events


def _tsc_get(session: StewardSession, url: str) -> requests.Response:
    """A GET the way TSC's Endpoint._make_request sends one."""
    headers = {"x-tableau-auth": "token-1", "User-Agent": "Tableau Server Client/0.42"}
    return session.get(url, params={"pageSize": "100", "pageNumber": "2"}, headers=headers, allow_redirects=False)


def test_a_plain_get_sends_what_session_request_sends(server, monkeypatch):
    session, events = _session(server)
    sent_to_adapter: list[str] = []
    original = requests.sessions.Session.send

    def counting_send(self, request, **kwargs):  # Session.send is what the full path goes through
        sent_to_adapter.append(request.url)
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.sessions.Session, "send", counting_send)
    plain = _tsc_get(session, f"{server}/api/3.24/sites/s/workbooks")
    assert sent_to_adapter == []  # the plain path did not go through Session.request/send
    session.hooks["response"].append(lambda response, *args, **kwargs: response)  # forces the full path
    full = _tsc_get(session, f"{server}/api/3.24/sites/s/workbooks")
    assert len(sent_to_adapter) == 1
    (_, plain_path, plain_headers), (_, full_path, full_headers) = Recorder.seen
    assert plain_path == full_path == "/api/3.24/sites/s/workbooks?pageSize=100&pageNumber=2"
    assert plain_headers == full_headers
    assert plain_headers["x-tableau-auth"] == "token-1" and "gzip" in plain_headers["accept-encoding"]
    assert plain.content == full.content == BODY  # gzip decoded, read whole
    assert [(e.method, e.path, e.query, e.status) for e in events] == [
        ("GET", "/api/3.24/sites/s/workbooks", "pageSize=100&pageNumber=2", 200)
    ] * 2


def test_cookies_are_kept_and_sent_back(server):
    session, _ = _session(server)
    _tsc_get(session, f"{server}/first")
    _tsc_get(session, f"{server}/second")
    assert session.cookies.get("AWSALB") == "node-2"
    assert "cookie" not in Recorder.seen[0][2]
    assert Recorder.seen[1][2]["cookie"] == "AWSALB=node-2"


def test_redirects_are_left_to_tsc(server):
    session, _ = _session(server)
    response = _tsc_get(session, f"{server}/moved")
    assert response.status_code == 302 and response.headers["location"] == "/elsewhere"
    assert [path for _, path, _ in Recorder.seen] == ["/moved?pageSize=100&pageNumber=2"]


def test_a_plain_get_goes_through_the_proxy_the_environment_names(server, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server)  # the recorder plays the forward proxy
    session, _ = _session("http://tableau.invalid")
    assert _tsc_get(session, "http://tableau.invalid/api/3.24/sites/s/users").content == BODY
    assert Recorder.seen[0][1] == "http://tableau.invalid/api/3.24/sites/s/users?pageSize=100&pageNumber=2"


def test_no_request_takes_credentials_from_netrc(server, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert requests.utils.get_netrc_auth(server) == ("someone", "netrc-secret")  # requests would use it
    session, _ = _session(server)
    _tsc_get(session, f"{server}/api/3.24/sites/s/workbooks")
    session.post(f"{server}/api/3.24/auth/signin", data=b"<tsRequest/>", allow_redirects=False)
    assert [command for command, _, _ in Recorder.seen] == ["GET", "POST"]
    assert all("authorization" not in headers for _, _, headers in Recorder.seen)


def test_a_body_cut_short_is_a_requests_error_on_record(server):
    """The body is read inside the transport's attempt, as Session.request read it: a cut body surfaces as
    requests' own error (which the access layer maps), with the attempt on record."""
    session, events = _session(server)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _tsc_get(session, f"{server}/cut")
    assert [(e.path, e.status, e.error) for e in events] == [("/cut", None, "ChunkedEncodingError")]
