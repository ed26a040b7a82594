"""Delivering notification events: per-target bounded queues, retries with backoff, every attempt reported.

    dispatcher = NotificationDispatcher(resolve_targets(spec), on_attempt=audit_writer)
    async with dispatcher:            # starts one worker per target (inside the server's event loop)
        dispatcher.submit(event)      # never waits for the network; returns how many deliveries were queued
    # leaving the block waits up to `grace` seconds for queued deliveries, then records the rest abandoned

Guarantees:
- `submit` is a plain function: it encodes the payload and puts it on each subscribed target's queue
  without awaiting anything, so a receiver that is down can never block an approval.
- Nothing is lost silently. Every attempt is reported to `on_attempt(AttemptRecord)`: `delivered`,
  `retrying` (with the delay), `gave_up` (the last attempt failed, or the receiver refused the payload
  with a 4xx other than 408/425/429), `dropped` (the target's queue was full, or the dispatcher closed)
  and `abandoned` (still queued or retrying when the server shut down).
- Records name the target and its redacted endpoint (see `redact_url`); never the URL's token part,
  never the signing secret, never an exception's text (httpx errors may quote the URL).
- One worker per target, so a Slack outage does not delay the webhook; within a target deliveries go
  in order, each retried with exponential backoff and jitter up to `RetryPolicy.max_attempts` attempts.

`submit` must be called from the event loop's thread (from a worker thread use
`anyio.from_thread.run_sync(dispatcher.submit, event)`). `on_attempt` is called synchronously from the
event loop: it must be quick (hand the record to the audit writer); its exceptions are logged, not raised.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Self

import anyio
import anyio.abc
import httpx2
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from server.notify.config import DeliveryTarget
from server.notify.events import NotificationEvent
from server.notify.formats import payload_bytes
from server.notify.signing import DELIVERY_HEADER, EVENT_HEADER, signature_headers

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retrying", "gave_up", "dropped", "abandoned"]
# Statuses worth another attempt: the receiver (or a proxy in front of it) is busy or broken for now.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "tableau-steward-notifications/1"


@dataclass(frozen=True)
class AttemptRecord:
    """One delivery attempt (or the reason there was none), as written to the audit log."""

    target: str
    format: str
    endpoint: str
    event: str
    event_id: str
    request_id: str
    delivery_id: str
    attempt: int  # 1-based; 0 when the delivery was dropped or abandoned before an attempt
    max_attempts: int
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    retry_in: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait after failed attempt `attempt`: half the exponential step plus a random half
        (`jitter` in [0, 1)), so receivers coming back are not hit by every sender at once."""
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return step / 2 + step / 2 * jitter


@dataclass
class _Delivery:
    event: NotificationEvent
    body: bytes
    delivery_id: str
    attempts: int = 0


@dataclass(frozen=True)
class _Answer:
    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUSES or self.status >= 500


def delivery_id(event: NotificationEvent, target: str) -> str:
    """The same for every attempt, and in every process, for one event to one target: receivers dedupe on it."""
    return "dlv_" + hashlib.sha256(f"{event.event_id}:{target}".encode()).hexdigest()[:24]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class NotificationDispatcher:
    def __init__(
        self,
        targets: Iterable[DeliveryTarget],
        on_attempt: Callable[[AttemptRecord], None],
        *,
        retry: RetryPolicy | None = None,
        queue_size: int = 1000,
        timeout: float = 10.0,
        grace: float = 5.0,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.targets = tuple(targets)
        self.retry = retry or RetryPolicy()
        self.timeout, self.grace, self.queue_size = timeout, grace, queue_size
        self._on_attempt, self._clock, self._jitter = on_attempt, clock, jitter
        self._streams: dict[
            str, tuple[MemoryObjectSendStream[_Delivery], MemoryObjectReceiveStream[_Delivery]]
        ] = {t.name: anyio.create_memory_object_stream[_Delivery](queue_size) for t in self.targets}
        self._outstanding = 0
        self._idle: anyio.Event | None = None  # created by the first waiter (an Event needs the event loop)
        self._task_group: Any = None

    # -- the caller's side ----------------------------------------------------------------------------

    def submit(self, event: NotificationEvent) -> int:
        """Queue `event` for every target subscribed to its kind; never waits. Returns the number queued."""
        queued = 0
        for target in self.targets:
            if event.kind not in target.events:
                continue
            delivery = _Delivery(event, b"", delivery_id(event, target.name))
            try:
                delivery.body = payload_bytes(target.format, event)
            except Exception:  # a formatting bug must never fail the approval that emitted the event
                log.exception("notification payload for %s could not be built", target.name)
                self._report(target, delivery, "dropped", error="the payload could not be built")
                continue
            send = self._streams[target.name][0]
            try:
                send.send_nowait(delivery)
            except anyio.WouldBlock:
                self._report(target, delivery, "dropped", error=f"queue full ({self.queue_size} waiting)")
                continue
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._report(target, delivery, "dropped", error="notifications are shut down")
                continue
            self._outstanding += 1
            queued += 1
        return queued

    async def wait_idle(self) -> None:
        """Wait until every queued delivery has ended (delivered or given up)."""
        while self._outstanding:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    def pending(self) -> dict[str, int]:
        """Deliveries waiting in each target's queue (not counting the one in flight)."""
        return {name: pair[1].statistics().current_buffer_used for name, pair in self._streams.items()}

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        await self._task_group.start(self.run)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        with anyio.move_on_after(self.grace):
            await self.wait_idle()
        if self._outstanding:
            self._task_group.cancel_scope.cancel()  # the workers record what they abandon
        await self._task_group.__aexit__(None, None, None)

    def close(self) -> None:
        """Accept no more events; workers finish what is queued, then stop."""
        for send, _ in self._streams.values():
            send.close()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """One worker per target until `close()` and the queues are empty (or until cancelled)."""
        client = httpx2.AsyncClient(timeout=self.timeout, follow_redirects=False)
        async with client, anyio.create_task_group() as tg:
            for target in self.targets:
                tg.start_soon(self._worker, client, target, self._streams[target.name][1])
            task_status.started()

    # -- the workers -------------------------------------------------------------------------------------

    async def _worker(
        self,
        client: httpx2.AsyncClient,
        target: DeliveryTarget,
        receive: MemoryObjectReceiveStream[_Delivery],
    ) -> None:
        current: _Delivery | None = None
        async with receive:
            try:
                async for current in receive:
                    await self._deliver(client, target, current)
                    self._finished()
                    current = None
            except anyio.get_cancelled_exc_class():
                self._abandon(target, current, receive)  # while `receive` is open: what waits is still there
                raise

    def _abandon(
        self, target: DeliveryTarget, current: _Delivery | None, receive: MemoryObjectReceiveStream
    ) -> None:
        waiting = [current] if current is not None else []
        while True:
            try:
                waiting.append(receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        for delivery in waiting:
            self._report(target, delivery, "abandoned", error="the server shut down before delivery")
            self._finished()

    def _finished(self) -> None:
        self._outstanding -= 1
        if self._outstanding <= 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def _deliver(self, client: httpx2.AsyncClient, target: DeliveryTarget, delivery: _Delivery) -> None:
        while True:
            delivery.attempts += 1
            answer = await self._attempt(client, target, delivery)
            if answer.ok:
                self._report(target, delivery, "delivered", status_code=answer.status)
                return
            if not answer.retryable:
                why = (
                    "redirects are not followed"
                    if 300 <= (answer.status or 0) < 400
                    else "the receiver refused it"
                )
                error = f"{answer.error}: {why}, not retried"
                self._report(target, delivery, "gave_up", status_code=answer.status, error=error)
                return
            if delivery.attempts >= self.retry.max_attempts:
                error = f"{answer.error}; giving up after {delivery.attempts} attempts"
                self._report(target, delivery, "gave_up", status_code=answer.status, error=error)
                log.warning("notification to %s given up: %s", target.name, error)
                return
            delay = self.retry.delay(delivery.attempts, self._jitter())
            if answer.retry_after is not None:
                delay = max(delay, min(answer.retry_after, self.retry.max_delay))
            self._report(
                target,
                delivery,
                "retrying",
                status_code=answer.status,
                error=answer.error,
                retry_in=round(delay, 3),
            )
            await anyio.sleep(delay)

    async def _attempt(
        self, client: httpx2.AsyncClient, target: DeliveryTarget, delivery: _Delivery
    ) -> _Answer:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: delivery.event.name,
            DELIVERY_HEADER: delivery.delivery_id,
        }
        if target.secret is not None:
            headers |= signature_headers(target.secret.get_secret_value(), delivery.body, now=self._clock())
        try:
            # Streamed and never read: a receiver's answer body cannot fill our memory.
            async with client.stream(
                "POST", target.url.get_secret_value(), content=delivery.body, headers=headers
            ) as response:
                status = response.status_code
                retry_after = _retry_after(response.headers.get("retry-after"))
        except httpx2.TimeoutException:
            return _Answer(None, "timed out")
        # The class name only (ConnectError, InvalidURL...): the message may quote the URL. Catch-all: no
        # error may end the worker, or the server's task group with it.
        except Exception as exc:  # noqa: BLE001
            return _Answer(None, exc.__class__.__name__)
        return _Answer(status, None if 200 <= status < 300 else f"HTTP {status}", retry_after)

    def _report(self, target: DeliveryTarget, delivery: _Delivery, outcome: Outcome, **details: Any) -> None:
        record = AttemptRecord(
            target=target.name,
            format=target.format,
            endpoint=target.endpoint,
            event=delivery.event.name,
            event_id=delivery.event.event_id,
            request_id=delivery.event.request_id,
            delivery_id=delivery.delivery_id,
            attempt=delivery.attempts,
            max_attempts=self.retry.max_attempts,
            outcome=outcome,
            **details,
        )
        try:
            self._on_attempt(record)
        except Exception:  # a broken audit hook must not stop deliveries; the record still goes to the log
            log.exception("notification attempt record could not be written: %s", record.as_dict())
