"""One Tableau session per Tableau user, for `identity: per_user` (signed in through a connected app).

Each user gets a `TableauClient` of their own, so everything the service session has applies per
user: single-flight re-sign-in after a 401 (a fresh JWT each time), the hourly and per-second
budgets (Tableau counts its 40,000 calls per hour per user), the retry deadline, and the caches (a
listing cached for one user never answers another). The pool is bounded: past `capacity`, the
least recently used idle session is signed out. A client is leased for the length of one call, so
a session in use is never closed under it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from server.config import Settings

from .client import TableauClient
from .errors import BadConfiguration
from .transport import Observer

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 64


class UserSessions:
    """Per-user Tableau clients: `async with sessions.lease("jordan.lee@example.com") as client: ...`."""

    def __init__(self, settings: Settings, *, capacity: int = DEFAULT_CAPACITY) -> None:
        settings.as_user("check")  # a connected app must be configured: fail at start, not on the first call
        self.settings = settings
        self.capacity = max(1, capacity)
        self._clients: OrderedDict[str, TableauClient] = OrderedDict()  # least recently used first
        self._leases: dict[str, int] = {}
        self._sign_in_locks: dict[str, anyio.Lock] = {}
        self._observers: list[Observer] = []

    def add_observer(self, observer: Observer) -> None:
        """Observe every request of every user's session (present and future)."""
        self._observers.append(observer)
        for client in self._clients.values():
            client.add_observer(observer)

    def remove_observer(self, observer: Observer) -> None:
        self._observers.remove(observer)
        for client in self._clients.values():
            client.remove_observer(observer)

    @property
    def users(self) -> list[str]:
        """The users with an open session, least recently used first."""
        return [client.settings.credentials.username for client in self._clients.values()]  # type: ignore[union-attr]

    @property
    def sign_ins(self) -> dict[str, int]:
        return {client.settings.credentials.username: client.sign_ins  # type: ignore[union-attr]
                for client in self._clients.values()}

    @asynccontextmanager
    async def lease(self, tableau_user: str) -> AsyncIterator[TableauClient]:
        """The session of `tableau_user` (signed in on first use, one sign-in however many callers wait)."""
        key = tableau_user.casefold()  # Tableau user names are not case-sensitive
        client = await self._client(key, tableau_user)
        try:
            yield client
        finally:
            self._leases[key] -= 1
            await self._evict_idle()

    async def _client(self, key: str, tableau_user: str) -> TableauClient:
        lock = self._sign_in_locks.setdefault(key, anyio.Lock())
        async with lock:
            client = self._clients.get(key)
            if client is None:
                client = TableauClient(self.settings.as_user(tableau_user))
                for observer in self._observers:
                    client.add_observer(observer)
                try:
                    await client.connect()
                except BadConfiguration as exc:  # e.g. a user Tableau does not know: say so, with Tableau's reason
                    raise BadConfiguration(
                        f"Tableau refused to sign in as Tableau user '{tableau_user}' through the connected app "
                        f"'{client.settings.credentials.client_id}' ({_reason(exc)}). Check the principal's tableau_user "  # type: ignore[union-attr]
                        "in the policy and the TABLEAU_CONNECTED_APP_* settings.",
                        status=exc.status, code=exc.code,
                    ) from exc
                self._clients[key] = client
            self._clients.move_to_end(key)
            self._leases[key] = self._leases.get(key, 0) + 1
            return client

    async def _evict_idle(self) -> None:
        while len(self._clients) > self.capacity:
            idle = next((key for key in self._clients if not self._leases.get(key)), None)
            if idle is None:
                return  # every session is in use: the pool shrinks back as calls finish
            client = self._clients.pop(idle)
            self._leases.pop(idle, None)
            log.info("signing out the least recently used Tableau session (%d users open)", len(self._clients))
            await client.close()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.close()


def _reason(exc: BadConfiguration) -> str:
    """Tableau's own words from a refused sign-in (the part in parentheses), else the whole message."""
    text = str(exc)
    start, end = text.find("("), text.find("). Check the")
    return text[start + 1 : end] if 0 <= start < end else text
