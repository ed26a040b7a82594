"""`POST /integrations/slack/interactions`: an Approve or Deny click in Slack, decided like the admin API.

The request is verified by `SlackInteractionVerifier` (Slack's v0 signature, the 5-minute window, replays),
the Slack user becomes the approver principal the policy maps it to, and the decision goes through
`Governance.decide_request`, the admin API's decision path: the store refuses the requester, non-approvers
and anything not pending, and its hooks wake the runner and send the notifications.

Slack wants an answer within 3 seconds, so the route answers at once; the message is updated afterwards
through the click's `response_url` (a background task after the response), with the outcome and without
buttons, or, for a refused click, with a note only the clicker sees. Every refusal is audited
(`slack.refused`, plus the store's own `approval.refused` for a decision it refused).

`STEWARD_TEST_SLACK_RESPONSE_URL` (a loopback URL, tests only) lets the tests' emulated Slack receive the
updates; in production only https://hooks.slack.com/ response URLs are accepted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx2
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.governance.approvals import ApprovalError
from server.integrations.slack import (
    MAX_BODY,
    SlackInteraction,
    SlackInteractionVerifier,
    SlackRequestRefused,
    outcome_message,
    refusal_message,
    verifier_from_spec,
)
from server.notify.service import event_for

log = logging.getLogger(__name__)

PATH = "/integrations/slack/interactions"
TEST_RESPONSE_URL_ENV = "STEWARD_TEST_SLACK_RESPONSE_URL"
RESPONSE_TIMEOUT = 10.0


def slack_verifier(policy: Any) -> SlackInteractionVerifier | None:
    """The verifier for the policy's `notifications.slack_interactions` (None when it has none); its signing
    secret read from the environment or a file now. NotificationsError when it cannot be read."""
    spec = policy.spec.notifications.slack_interactions
    if spec is None:
        return None
    return verifier_from_spec(
        spec,
        base_dir=policy.source.parent if policy.source is not None else None,
        test_response_url_prefix=os.environ.get(TEST_RESPONSE_URL_ENV),
    )


def slack_routes(governance_of: Callable[[], Any]) -> list[Route]:
    async def interactions(request: Request) -> Response:
        governance = governance_of()
        if governance is None:
            return JSONResponse({"error": "the server is still starting"}, status_code=503)
        verifier = governance.slack_verifier
        if verifier is None:
            return JSONResponse({"error": "Slack interactions are not configured"}, status_code=404)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return await _refused(governance, SlackRequestRefused("bad_payload", "the request body is too large"))
        body = await request.body()
        try:
            click = verifier.verify_interaction(dict(request.headers), body)
        except SlackRequestRefused as exc:
            if exc.reason == "not_a_decision":  # the console link: acknowledged, nothing to decide
                return Response(status_code=200)
            return await _refused(governance, exc)
        return await _decide(governance, click)

    return [Route(PATH, interactions, methods=["POST"])]


async def _refused(governance: Any, exc: SlackRequestRefused) -> Response:
    await _audit(governance, reason=exc.reason, slack_user_id=exc.slack_user_id, message=str(exc))
    return JSONResponse({"error": str(exc), "reason": exc.reason}, status_code=exc.status_code)


async def _decide(governance: Any, click: SlackInteraction) -> Response:
    who = click.slack_user_name or click.slack_user_id
    reason = f"in Slack by {who} ({click.slack_user_id})"
    try:
        decided = await anyio.to_thread.run_sync(
            lambda: governance.decide_request(
                click.principal, click.request_id, approve=click.decision == "approve", reason=reason
            )
        )
    except ApprovalError as exc:  # the store refused it and audited approval.refused; the Slack trail too
        await _audit(governance, reason=exc.code, slack_user_id=click.slack_user_id, message=str(exc),
                     approval_id=click.request_id, principal=click.principal)
        note = refusal_message(f"Not {click.decision}d: {exc}")
        return Response(status_code=200, background=_post_later(click.response_url, note))
    if decided.status == "pending":  # two-person approval: this was one of several
        update = refusal_message(
            f"Your approval is recorded: {len(decided.approvers)} of {decided.required_approvals}."
        )
    else:
        kind = "approved" if decided.status == "approved" else "denied"
        update = outcome_message(event_for(kind, decided, click.principal, reason, None), click)
    return Response(status_code=200, background=_post_later(click.response_url, update))


def _post_later(url: str | None, message: dict[str, Any]) -> BackgroundTask | None:
    return None if url is None else BackgroundTask(_post, url, message)


async def _post(url: str, message: dict[str, Any]) -> None:
    """Update the Slack message. A failure is logged by class only: the response URL is a credential."""
    try:
        async with httpx2.AsyncClient(timeout=RESPONSE_TIMEOUT, follow_redirects=False) as http:
            answer = await http.post(url, json=message)
        if answer.status_code >= 300:
            log.warning("Slack refused the message update (HTTP %s)", answer.status_code)
    except Exception as exc:  # noqa: BLE001  # nothing here may fail the decision already made
        log.warning("could not update the Slack message (%s)", exc.__class__.__name__)


async def _audit(governance: Any, **fields: Any) -> None:
    try:
        await anyio.to_thread.run_sync(lambda: governance.audit.append("slack.refused", **fields))
    except Exception:  # a refusal that cannot be recorded still refuses
        log.exception("could not audit a refused Slack request (%s)", fields.get("reason"))
