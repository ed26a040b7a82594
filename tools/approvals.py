"""Approvals toolset: get_request lets the requester follow a gated write. Nothing here approves anything."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from server.governance.approvals import ApprovalError
from server.toolkit import READ_ONLY, WRITE_IDEMPOTENT, ToolContext, ToolFailure, ToolSpec
from tools.groups import AddUserToGroupOutput
from tools.jobs import CancelJobOutput, RefreshOutput
from tools.lifecycle import CreateUserOutput, RemoveUserFromGroupOutput, UpdateUserSiteRoleOutput
from tools.ownership import TransferOwnershipOutput
from tools.sync import SyncGroupMembersOutput


class GetRequestInput(BaseModel):
    request_id: str = Field(description="The id from a pending_approval result, e.g. 'apr_…'.")


class ApprovalDecision(BaseModel):
    approver: str
    decision: str
    reason: str | None = None
    at: datetime | None = None


class RequestResult(BaseModel):
    ok: bool = Field(description="True when the change ran; false when running it failed.")
    output: (
        RefreshOutput | AddUserToGroupOutput | TransferOwnershipOutput | SyncGroupMembersOutput
        | RemoveUserFromGroupOutput | CreateUserOutput | UpdateUserSiteRoleOutput | CancelJobOutput | None
    ) = Field(
        None, description="The tool's result, the same as calling it directly would have returned."
    )
    error: str | None = Field(None, description="Why running it failed.")
    note: str | None = Field(
        None, description="What changed on the site since the approval (a rename or move) and why it still ran."
    )
    text: str | None = Field(None, description="An outcome recorded before results were stored as objects.")


class RunningJob(BaseModel):
    job_id: str = Field(description="The Tableau job the approved change waits on; get_job tells more.")
    progress: int | None = Field(None, description="0-100, as Tableau last reported it.")
    status: str | None = Field(None, description="Tableau's last word on the job, e.g. 'InProgress: 40%'.")


class GetRequestOutput(BaseModel):
    request_id: str
    tool: str
    arguments: dict[str, Any]
    status: str = Field(description="pending, approved, denied, expired, executing, executed, failed or refused.")
    preview: str
    targets: list[dict[str, Any]] = Field(
        default_factory=list, description="What the request acts on: the ids resolved when it was made, with their names."
    )
    requested_by: str
    created_at: datetime
    expires_at: datetime
    decisions: list[ApprovalDecision]
    result: RequestResult | None = Field(None, description="What the change did (or why it failed), once it ran.")
    job: RunningJob | None = Field(
        None, description="While an approved refresh runs on this server: its job and progress, read live."
    )
    message: str


def _result(status: str, stored: str | None) -> RequestResult | None:
    """The stored outcome as an object: the tool's own result when it ran, else Tableau's or our reason."""
    if stored is None:
        return None
    if status != "executed":
        return RequestResult(ok=False, error=stored)
    try:
        stored_result = json.loads(stored)
        if isinstance(stored_result, dict) and set(stored_result) == {"output", "note"}:
            return RequestResult(ok=True, output=stored_result["output"], note=stored_result["note"])
        return RequestResult(ok=True, output=stored_result)  # stored before the note was kept apart
    except (ValueError, ValidationError):
        return RequestResult(ok=True, error=None, output=None, text=stored)


async def get_request(ctx: ToolContext, args: GetRequestInput) -> GetRequestOutput:
    request = ctx.approvals.get_request(args.request_id.strip())
    if request is None or request.requester != ctx.principal:
        # Someone else's request id is answered like an unknown one.
        raise ToolFailure(f"No approval request '{args.request_id}' of yours exists. Check the id you were given.")
    view = ctx.approvals.request_view(request)
    live = ctx.live_progress(request.id) if ctx.live_progress and request.status == "executing" else None
    return GetRequestOutput(**{**view, "result": _result(view["status"], view.get("result")), "job": live})


class CancelRequestInput(BaseModel):
    request_id: str = Field(description="The id of your pending request, e.g. 'apr_…'.")
    reason: str | None = Field(None, max_length=500, description="Why you withdraw it (shown to approvers).")


class CancelRequestOutput(BaseModel):
    request_id: str
    status: str = Field(description="'denied': withdrawn; an approver can no longer approve it.")
    message: str


async def cancel_request(ctx: ToolContext, args: CancelRequestInput) -> CancelRequestOutput:
    request_id = args.request_id.strip()
    request = ctx.approvals.get_request(request_id)
    if request is None or request.requester != ctx.principal:
        raise ToolFailure(f"No approval request '{args.request_id}' of yours exists. Check the id you were given.")
    if request.status not in ("pending", "approved"):
        raise ToolFailure(
            f"Request {request_id} is {request.status} and can no longer be withdrawn; get_request shows what happened."
        )
    try:
        withdrawn = ctx.approvals.cancel_request(ctx.principal, request_id, args.reason)
    except ApprovalError as exc:  # it started running, or expired, in the meantime
        raise ToolFailure(f"Request {request_id} cannot be withdrawn: {exc}.") from None
    return CancelRequestOutput(
        request_id=withdrawn.id, status=withdrawn.status,
        message="Withdrawn: nothing was changed, and no approver can approve it any more.",
    )


GET_REQUEST = ToolSpec(
    name="get_request",
    title="Get an approval request",
    description=(
        "Follow a change that needed an administrator's approval: its status (pending, approved, denied, "
        "expired, executed, failed), the preview, who decided and why, and the result once it ran. Only the "
        "requester can see a request; nothing you send can approve it.\n"
        'Example: {"request_id": "apr_3kf9..."}.'
    ),
    input_model=GetRequestInput,
    output_model=GetRequestOutput,
    effect="read",
    annotations=READ_ONLY,
    run=get_request,
)


CANCEL_REQUEST = ToolSpec(
    name="cancel_request",
    title="Withdraw your approval request",
    description=(
        "Withdraw a change of yours that is still waiting for an administrator (pending, or approved but not "
        "started). Nothing is changed on the site, and a later approval is refused. Only the requester can "
        "withdraw a request.\n"
        'Example: {"request_id": "apr_3kf9...", "reason": "asked for the wrong group"}.'
    ),
    input_model=CancelRequestInput,
    output_model=CancelRequestOutput,
    effect="write",
    annotations=WRITE_IDEMPOTENT,
    run=cancel_request,
    own_requests_only=True,
)
