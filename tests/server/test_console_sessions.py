"""Console sessions expire on the server: after the idle time, after the absolute age, and on sign-out."""

from __future__ import annotations

from server.console.sessions import IDLE_SECONDS, MAX_AGE_SECONDS, MAX_SESSIONS, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_after_its_idle_time_unless_used_and_after_its_maximum_age() -> None:
    clock = Clock()
    store = SessionStore(clock)
    session_id, session = store.create("site-admin")
    assert store.get(session_id) is session and store.get("another id") is None
    while clock.now - 1000.0 < MAX_AGE_SECONDS - IDLE_SECONDS:  # used often: alive until the maximum age
        clock.now += IDLE_SECONDS - 1
        assert store.get(session_id) is session
    clock.now = 1000.0 + MAX_AGE_SECONDS + 1
    assert store.get(session_id) is None

    idle_id, _ = store.create("site-admin")
    clock.now += IDLE_SECONDS - 1
    assert store.get(idle_id, touch=False) is not None  # the page's poll does not keep it alive
    clock.now += 2
    assert store.get(idle_id) is None


def test_sign_out_ends_the_session_and_the_csrf_token_is_checked_exactly() -> None:
    store = SessionStore(Clock())
    session_id, session = store.create("site-admin")
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok(session.csrf[:-1])
    assert store.end(session_id) is session and store.get(session_id) is None
    assert session_id not in repr(store.__dict__), "only the id's digest is kept"


def test_the_number_of_sessions_is_bounded() -> None:
    store = SessionStore(Clock())
    first, _ = store.create("a")
    for _ in range(MAX_SESSIONS):
        store.create("b")
    assert store.get(first) is None and len(store._sessions) == MAX_SESSIONS
