"""Console sessions: random ids in an HttpOnly cookie, held server-side with an idle and an absolute expiry.

The cookie carries only a random id (32 bytes); the server keeps its SHA-256, so the id itself is never
stored. Each session has its own CSRF token (a synchronizer token put in every form as a hidden field and
compared in constant time). Sessions live in the memory of the process that signed the approver in: a
restart signs everyone out, which is the safe way round.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

IDLE_SECONDS = 30 * 60  # signed out after 30 minutes without a request
MAX_AGE_SECONDS = 8 * 3600  # and after 8 hours whatever happens
MAX_SESSIONS = 1000  # the oldest is dropped beyond this: memory stays bounded whoever signs in


@dataclass
class Session:
    principal: str
    csrf: str
    created: float
    last_seen: float
    notice: str | None = None  # shown once on the next page (after a decision's redirect)

    def csrf_ok(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.csrf.encode())

    def take_notice(self) -> str | None:
        notice, self.notice = self.notice, None
        return notice


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, principal: str) -> tuple[str, Session]:
        """A new session for `principal`; returns the id for the cookie (never kept) and the session."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(principal=principal, csrf=secrets.token_urlsafe(32), created=now, last_seen=now)
        with self._lock:
            self._drop_expired(now)
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None, *, touch: bool = True) -> Session | None:
        """The live session of a cookie's id, or None (unknown or expired). `touch` restarts its idle clock:
        a page or a decision does, the page's background poll does not (an open tab is not someone there)."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(_digest(session_id))
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[_digest(session_id)]
                return None
            if touch:
                session.last_seen = now
            return session

    def end(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            return self._sessions.pop(_digest(session_id), None)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > IDLE_SECONDS or now - session.created > MAX_AGE_SECONDS

    def _drop_expired(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]
