"""Delivery to a real HTTP receiver on loopback: signed, once per event, retried, given up, never blocking."""

from __future__ import annotations

import inspect
import json

import anyio
import pytest

from server.notify import (
    AttemptRecord,
    NotificationDispatcher,
    RetryPolicy,
    parse_notifications,
    resolve_targets,
    verify_signature,
)
from server.notify.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.notify.helpers import SECRET, all_events, event, targets
from tests.notify.receiver import local_receiver, refused_url

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def dispatcher(delivery_targets, records: list[AttemptRecord], **kwargs) -> NotificationDispatcher:
    return NotificationDispatcher(delivery_targets, records.append, retry=kwargs.pop("retry", FAST), **kwargs)


async def test_every_event_is_delivered_once_with_a_signature_that_verifies() -> None:
    records: list[AttemptRecord] = []
    with local_receiver() as receiver:
        async with dispatcher(targets(("ops", "webhook", receiver.url)), records) as d:
            for e in all_events():
                assert d.submit(e) == 1
            await d.wait_idle()
    bodies = [json.loads(r.body) for r in receiver.received]
    assert [b["event"] for b in bodies] == [e.name for e in all_events()]  # each once, in order
    for got in receiver.received:
        verify_signature(SECRET, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER], got.body)
        assert got.headers[EVENT_HEADER] == json.loads(got.body)["event"]
    assert len({r.headers[DELIVERY_HEADER] for r in receiver.received}) == 6
    assert [r.outcome for r in records] == ["delivered"] * 6
    assert all(r.attempt == 1 and r.status_code == 200 and r.target == "ops" for r in records)


async def test_a_receiver_that_is_down_gets_retries_then_a_recorded_give_up_and_never_blocks_the_caller() -> (
    None
):
    records: list[AttemptRecord] = []
    assert not inspect.iscoroutinefunction(NotificationDispatcher.submit)  # nothing for a caller to await
    async with dispatcher(targets(("down", "webhook", refused_url())), records) as d:
        queued = d.submit(event("created"))
        # submit returned before any attempt was made: the caller did not wait for the network
        assert queued == 1 and records == []
        await d.wait_idle()
    assert [r.outcome for r in records] == ["retrying", "retrying", "retrying", "gave_up"]
    assert [r.attempt for r in records] == [1, 2, 3, 4]
    assert all("ConnectError" in (r.error or "") for r in records)
    assert "giving up after 4 attempts" in (records[-1].error or "")
    assert all(r.retry_in is not None and 0 < r.retry_in <= FAST.max_delay for r in records[:-1])


async def test_a_failing_receiver_that_recovers_gets_the_event_once() -> None:
    records: list[AttemptRecord] = []
    with local_receiver([503, 429]) as receiver:
        async with dispatcher(targets(("flaky", "webhook", receiver.url)), records) as d:
            d.submit(event("approved"))
            await d.wait_idle()
    assert [r.outcome for r in records] == ["retrying", "retrying", "delivered"]
    assert [r.status_code for r in records] == [503, 429, 200]
    # three requests, one delivery id: a receiver that saw an earlier attempt can deduplicate
    assert len(receiver.received) == 3
    assert len({r.headers[DELIVERY_HEADER] for r in receiver.received}) == 1
    for got in receiver.received:  # each attempt is signed afresh
        verify_signature(SECRET, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER], got.body)


@pytest.mark.parametrize(
    ("status", "why"), [(400, "the receiver refused it"), (302, "redirects are not followed")]
)
async def test_a_receiver_refusing_or_redirecting_is_not_retried(status: int, why: str) -> None:
    records: list[AttemptRecord] = []
    with local_receiver([status]) as receiver:
        async with dispatcher(targets(("strict", "webhook", receiver.url)), records) as d:
            d.submit(event("denied"))
            await d.wait_idle()
    assert len(receiver.received) == 1  # and nothing was sent to the redirect's Location
    assert [(r.outcome, r.status_code) for r in records] == [("gave_up", status)]
    assert records[0].error == f"HTTP {status}: {why}, not retried"


def test_backoff_doubles_up_to_the_cap_with_jitter_on_the_upper_half() -> None:
    policy = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=10.0)
    assert [policy.delay(n, 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert [policy.delay(n, 0.999) for n in range(1, 6)] == pytest.approx(
        [1.0, 2.0, 4.0, 8.0, 10.0], abs=0.02
    )


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    records: list[AttemptRecord] = []
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.05)
    with local_receiver([429, 503], retry_after="0.03") as receiver:
        async with dispatcher(targets(("busy", "webhook", receiver.url)), records, retry=policy) as d:
            d.submit(event("executed"))
            await d.wait_idle()
    assert [r.outcome for r in records] == ["retrying", "retrying", "delivered"]
    assert [r.retry_in for r in records[:2]] == [0.03, 0.03]  # the receiver's wish, not our 1 ms step


async def test_a_down_target_does_not_hold_up_the_others() -> None:
    records: list[AttemptRecord] = []
    slow = RetryPolicy(max_attempts=3, base_delay=30, max_delay=30)  # would wait a minute in all
    with local_receiver() as receiver:
        async with dispatcher(
            targets(("down", "webhook", refused_url()), ("up", "slack", receiver.url)),
            records,
            retry=slow,
            grace=0.2,
        ) as d:
            d.submit(event("created"))
            with anyio.fail_after(10):  # a bound for a broken build, not a timing assertion
                while not any(r.target == "up" for r in records):
                    await anyio.sleep(0.01)
    assert [r.outcome for r in records if r.target == "up"] == ["delivered"]
    down = [r.outcome for r in records if r.target == "down"]
    # shutting down while the down target waits to retry: the delivery is recorded abandoned, not lost
    assert down == ["retrying", "abandoned"]
    assert len(receiver.received) == 1


async def test_two_processes_reporting_the_same_transition_send_the_same_ids() -> None:
    records: list[AttemptRecord] = []
    with local_receiver() as receiver:
        for _ in range(2):  # two servers sharing the store, each building the event from the request
            async with dispatcher(targets(("ops", "webhook", receiver.url)), records) as d:
                d.submit(event("approved"))
                await d.wait_idle()
    first, second = receiver.received
    assert first.headers[DELIVERY_HEADER] == second.headers[DELIVERY_HEADER]
    assert json.loads(first.body)["event_id"] == json.loads(second.body)["event_id"]
    assert event("approved").event_id != event("denied").event_id


async def test_shutting_down_records_every_waiting_delivery_as_abandoned() -> None:
    records: list[AttemptRecord] = []
    slow = RetryPolicy(max_attempts=3, base_delay=30, max_delay=30)
    async with dispatcher(targets(("down", "webhook", refused_url())), records, retry=slow, grace=0.1) as d:
        assert [d.submit(event(kind)) for kind in ("created", "approved", "executed")] == [1, 1, 1]
        with anyio.fail_after(10):  # a bound for a broken build, not a timing assertion
            while not records:
                await anyio.sleep(0.01)
    assert [(r.event, r.outcome) for r in records] == [
        ("request.created", "retrying"),
        ("request.created", "abandoned"),
        ("request.approved", "abandoned"),
        ("request.executed", "abandoned"),
    ]
    assert d.pending() == {"down": 0}


async def test_a_full_queue_drops_with_a_record_and_a_closed_dispatcher_refuses_with_one() -> None:
    records: list[AttemptRecord] = []
    with local_receiver() as receiver:
        async with dispatcher(targets(("ops", "webhook", receiver.url)), records, queue_size=2) as d:
            results = [d.submit(event(kind)) for kind in ("created", "approved", "denied")]
            assert results == [1, 1, 0]  # no await between: the worker has not taken any yet
            assert [r.outcome for r in records] == ["dropped"]
            assert records[0].event == "request.denied" and "queue full" in (records[0].error or "")
            await d.wait_idle()
        assert d.submit(event("executed")) == 0
    assert records[-1].outcome == "dropped" and records[-1].event == "request.executed"
    assert [json.loads(r.body)["event"] for r in receiver.received] == ["request.created", "request.approved"]


async def test_only_the_subscribed_events_go_to_a_target() -> None:
    records: list[AttemptRecord] = []
    with local_receiver() as receiver:
        spec = parse_notifications(
            {
                "targets": [
                    {"name": "chat", "format": "teams", "url_env": "U", "events": ["created", "failed"]}
                ]
            }
        )
        async with dispatcher(resolve_targets(spec, environ={"U": receiver.url}), records) as d:
            assert [d.submit(e) for e in all_events()] == [1, 0, 0, 0, 1, 0]
            await d.wait_idle()
    kinds = [json.loads(r.body)["attachments"][0]["content"]["body"][0]["text"] for r in receiver.received]
    assert kinds == ["Approval needed: add_user_to_group", "Failed: add_user_to_group"]


async def test_records_never_carry_the_secret_or_the_url_token() -> None:
    records: list[AttemptRecord] = []
    token = "T0AAAAAAA/B0BBBBBBB/abcdefghijklmnop1234"
    with local_receiver(path=f"/services/{token}") as receiver:
        url = receiver.url + "?key=querysecret123"
        async with dispatcher(
            targets(("ops", "webhook", url), ("down", "slack", refused_url(f"/x/{token}"))),
            records,
            retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01),
        ) as d:
            d.submit(event("created"))
            await d.wait_idle()
    assert {r.outcome for r in records} == {"delivered", "retrying", "gave_up"}
    text = json.dumps([r.as_dict() for r in records])
    for secret in (SECRET, "abcdefghijklmnop1234", "querysecret123"):
        assert secret not in text
    assert "[REDACTED]" in records[0].endpoint and records[0].endpoint.startswith("http://127.0.0.1:")


async def test_a_broken_attempt_hook_does_not_stop_deliveries() -> None:
    calls: list[str] = []

    def hook(record: AttemptRecord) -> None:
        calls.append(record.outcome)
        raise RuntimeError("audit log unavailable")

    with local_receiver() as receiver:
        async with NotificationDispatcher(targets(("ops", "webhook", receiver.url)), hook, retry=FAST) as d:
            d.submit(event("created"))
            d.submit(event("approved"))
            await d.wait_idle()
    assert calls == ["delivered", "delivered"] and len(receiver.received) == 2


async def test_an_unusable_url_is_given_up_and_the_other_targets_still_deliver() -> None:
    from pydantic import SecretStr

    from server.notify.config import DeliveryTarget

    records: list[AttemptRecord] = []
    broken = DeliveryTarget(
        name="broken", format="slack", url=SecretStr("hxxp:/nowhere"), events=frozenset({"created"})
    )
    with local_receiver() as receiver:
        async with dispatcher((broken, *targets(("ok", "teams", receiver.url))), records) as d:
            d.submit(event("created"))
            await d.wait_idle()
    assert [r.outcome for r in records if r.target == "broken"][-1] == "gave_up"
    assert [r.outcome for r in records if r.target == "ok"] == ["delivered"]
