"""Notifications wired into the server: committed request changes become events, delivered and audited.

    async with running_notifications(governance):   # in the server's lifespan (HTTP and stdio)
        ...                                           # every created/approved/denied/executed/failed/expired
                                                      # change is queued for the policy's targets

- The events come from `Governance`'s change hooks, called after the store committed the change, in whatever
  thread made it (the admin API decides in a worker thread). The event is handed to the event loop, where the
  dispatcher queues it without waiting for the network: a receiver that is down never delays a decision.
- Every delivery attempt (`AttemptRecord`, already free of the secret and the URL's token) becomes a
  `notification.attempt` audit record, written by one writer task in a worker thread, like every store write.
- A change made by another process sharing the store is reported by that process (its own hooks); event and
  delivery ids are derived from the request and the kind, so receivers can drop a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from server.notify.config import DeliveryTarget
from server.notify.delivery import AttemptRecord, NotificationDispatcher, RetryPolicy
from server.notify.events import EVENT_KINDS, EventTarget, NotificationEvent

log = logging.getLogger(__name__)

AUDIT_BACKLOG = 10_000  # attempt records waiting for the writer; beyond that they are logged, not held


def call_on_loop(token: Any, fn: Any, *args: Any) -> bool:
    """Call `fn(*args)` on the event loop of `token` from any thread (at once when already on it).
    False when that loop has stopped."""
    try:
        anyio.lowlevel.current_token()
    except RuntimeError:  # a worker thread (the admin API decides in one), or a thread of its own
        try:
            anyio.from_thread.run_sync(fn, *args, token=token)
        except RuntimeError:
            return False
        return True
    fn(*args)
    return True


def console_link(base: str | None, request_id: str) -> str | None:
    return None if not base else base.rstrip("/") + "/requests/" + request_id


def event_for(kind: str, request: Any, actor: str | None, reason: str | None, console_url: str | None) -> NotificationEvent:
    """The event receivers get, built from the request as the store holds it now."""
    return NotificationEvent(
        kind=kind,  # type: ignore[arg-type]
        request_id=request.id,
        tool=request.tool,
        requester=request.requester,
        status=request.status,
        preview=request.preview,
        targets=tuple(
            EventTarget(str(t.get("kind") or t.get("role")), str(t.get("name") or t.get("id")), t.get("id"))
            for t in request.targets
        ),
        console_url=console_link(console_url, request.id),
        actor=actor,
        reason=reason,
        result=request.result if kind in ("executed", "failed") else None,
        approvals=len(request.approvers),
        required_approvals=request.required_approvals,
        expires_at=request.expires_at,
    )


class Notifier:
    """Feeds `governance`'s committed changes to a dispatcher and its attempts to the audit log."""

    def __init__(self, governance: Any, targets: tuple[DeliveryTarget, ...], **dispatcher_options: Any) -> None:
        spec = governance.policy.spec.notifications
        self.governance = governance
        self.console_url = spec.console_url
        self.dispatcher = NotificationDispatcher(
            targets, self._attempted, retry=RetryPolicy(max_attempts=spec.max_attempts),
            queue_size=spec.queue_size, **dispatcher_options,
        )
        self._records, self._pending_records = anyio.create_memory_object_stream[AttemptRecord](AUDIT_BACKLOG)
        self._token: Any = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Notifier]:
        self._token = anyio.lowlevel.current_token()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._write_records)
            try:
                async with self.dispatcher:
                    self.governance.on_decided(self.changed)
                    yield self
            finally:
                self._token = None
                self._records.close()  # the writer finishes what is queued, then ends

    # -- events in -----------------------------------------------------------------------------------------

    def changed(self, kind: str, request: Any, actor: str | None, reason: str | None) -> None:
        """A change hook: queue the event for the targets (from any thread; never waits for the network)."""
        if kind not in EVENT_KINDS or self._token is None:
            return
        event = event_for(kind, request, actor, reason, self.console_url)
        if not call_on_loop(self._token, self.dispatcher.submit, event):
            log.warning("notifications are stopped; %s of %s not sent", event.name, request.id)

    # -- attempts out --------------------------------------------------------------------------------------

    def _attempted(self, record: AttemptRecord) -> None:
        try:
            self._records.send_nowait(record)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            log.error("notification attempt not audited (%s to %s: %s)", record.event, record.target, record.outcome)

    async def _write_records(self) -> None:
        async with self._pending_records:
            async for record in self._pending_records:
                with anyio.CancelScope(shield=True):
                    try:
                        await anyio.to_thread.run_sync(self._append, record)
                    except Exception:  # the audit store is unusable: say so, keep delivering
                        log.exception("could not audit a notification attempt to %s", record.target)

    def _append(self, record: AttemptRecord) -> None:
        self.governance.audit.append("notification.attempt", **record.as_dict())


@asynccontextmanager
async def running_notifications(governance: Any, **dispatcher_options: Any) -> AsyncIterator[Notifier | None]:
    """Notifications for the policy's targets while the block runs; None (and nothing started) without targets."""
    targets = governance.notification_targets
    if not targets:
        yield None
        return
    async with Notifier(governance, targets, **dispatcher_options).running() as notifier:
        yield notifier
