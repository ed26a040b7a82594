"""What a tool is: a typed spec that the server turns into an MCP tool behind one governed call path.

Tools never register themselves with MCP. Each tool module exposes `ToolSpec` objects and
`tools/registry.py` lists them all; `server/app.py` builds the MCP tools from that list, so
policy, approval, execution and audit are applied to every call in exactly one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from mcp.types import ToolAnnotations
from pydantic import BaseModel

T = TypeVar("T")

Effect = Literal["read", "write"]

# The four hints are always set explicitly: MCP's defaults (destructive, open world) are wrong for us.
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITE_IDEMPOTENT = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
# A write that takes something away (a membership, a license, a running job), idempotent: running it again
# once done changes nothing.
WRITE_DESTRUCTIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


class ToolFailure(Exception):
    """An error the model can act on: what went wrong and what to do next.

    The call path turns it into an MCP tool error (`isError: true`) with this text.
    """


class TargetGone(ToolFailure):
    """An approved request's target no longer exists (looked up by its recorded id): nothing is changed."""


def bound_id(ctx: ToolContext, role: str) -> str:
    """The recorded id of `role` in an approved request (`ctx.bound`); refuses when the request has none."""
    assert ctx.bound is not None
    target = ctx.bound.get(role)
    if not target:
        raise ToolFailure(f"The approved request records no {role} to act on; ask for a new request.")
    return target


@dataclass
class Progress:
    """Reports progress to the MCP client when it asked for it; a no-op otherwise."""

    report: Callable[[float, float | None, str | None], Awaitable[None]]
    # The Tableau job the tool waits on, and its last progress: what get_request shows of a running request.
    job_id: str | None = None
    last: tuple[float, float | None, str | None] | None = None

    async def __call__(self, done: float, total: float | None = None, message: str | None = None) -> None:
        self.last = (done, total, message)
        await self.report(done, total, message)

    @classmethod
    def recorded(cls) -> Progress:
        """Progress nobody is listening to live, kept for whoever asks (an approved request run by the server)."""
        return cls(_no_progress)

    def snapshot(self) -> dict[str, Any]:
        # Before the first poll, all that is known is that Tableau queued the job the refresh started.
        done, total, message = self.last or (0.0, 100.0, "Pending: 0%")
        percent = round(100 * done / total) if total else None
        return {"job_id": self.job_id, "progress": percent, "status": message}


async def _no_progress(done: float, total: float | None, message: str | None) -> None:
    return None


@dataclass
class ToolContext:
    """What a tool body may use: the Tableau client, the caller and a progress reporter."""

    tableau: Any  # server.tableau.TableauClient; Any keeps tools importable without a live site
    principal: str
    call_id: str
    progress: Progress = field(default_factory=lambda: Progress(_no_progress))
    approvals: Any = None  # the governance adapter, for get_request
    # The live job progress of an approved request running in this process (None when it is not); set by
    # the call path for get_request, which only reads state and never runs a request itself.
    live_progress: Callable[[str], dict[str, Any] | None] | None = None
    # Set when running an approved request: the recorded target ids by role ("datasource", "user", ...).
    # A tool then loads exactly these objects by id and never resolves a name again.
    bound: Mapping[str, str] | None = None
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    async def once(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """`compute()` at most once per call (a failure is not kept).

        The policy's facts, the approval preview and the tool body resolve the same target: doing
        it once saves the lookups, and the item the policy judged is the item that gets changed,
        even if the site changes between the steps.
        """
        if key not in self._memo:
            self._memo[key] = await compute()
        return self._memo[key]


ToolBody = Callable[[ToolContext, Any], Awaitable[BaseModel]]
# Resolves the facts the policy conditions need (target project path, group name, ...).
FactsFn = Callable[[ToolContext, Any], Awaitable[dict[str, Any]]]
# Describes, from the site's current state, what approving a gated call would change.
PreviewFn = Callable[[ToolContext, Any], Awaitable[str]]
# The objects a write acts on, resolved once per call: each {"role", "kind", "id", "name", ...shown facts}.
# An approval request records them; with `ToolContext.bound` set they are loaded by their recorded ids.
TargetsFn = Callable[[ToolContext, Any], Awaitable[list[dict[str, Any]]]]
# Facts read straight from the arguments, with no site lookup: a deny they already match is final,
# so such calls are refused before any request reaches Tableau.
LiteralFactsFn = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True, eq=False)  # identity: specs are registered once and used as cache keys
class ToolSpec:
    name: str
    title: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    effect: Effect
    annotations: ToolAnnotations
    run: ToolBody
    facts: FactsFn | None = None
    preview: PreviewFn | None = None
    literal_facts: LiteralFactsFn | None = None
    targets: TargetsFn | None = None
    # The arguments that designate the targets: two requests with the same targets and other arguments
    # are the same request, whether the target was named or given by id.
    target_args: tuple[str, ...] = ()
    # A write on the caller's own approval requests only, never on Tableau (cancel_request): a policy's
    # require_approval does not apply to it (approving a withdrawal is meaningless); a deny still does.
    own_requests_only: bool = False
    # The policy facts `facts` resolves (server/governance/policy.py CONDITION_FACTS, "change_count"): a
    # rule's condition concerns the tool only when it is listed here.
    fact_names: frozenset[str] = frozenset()

    @property
    def is_write(self) -> bool:
        return self.effect != "read"
