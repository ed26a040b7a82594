"""Builds the MCP server from the tool registry; every tool call goes through `CallPipeline`."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.server.subscriptions import InMemorySubscriptionBus
from pydantic import BaseModel, ConfigDict, Field

from server.arguments import ArgumentError, parse_arguments
from server.heap import tune_collector
from server.pipeline import CallPipeline, Services, result_model_for
from server.resources import prompt_arguments_middleware, register_resources_and_prompts
from server.schemas import nullable_as_type_list
from server.toolkit import ToolSpec

INSTRUCTIONS = """\
Tableau Steward answers questions about one Tableau site and makes a few governed changes to it.
- Start with list_content, list_users or list_groups to find things; find_owners answers "who owns what"
  (including content owned by inactive or unlicensed users); inspect_permissions explains who can do what
  and why; list_jobs and get_job report background jobs; list_refresh_tasks answers when scheduled refreshes
  run next and which keep failing; refresh_and_wait refreshes an extract and waits; whoami says which site and
  Tableau user you are working as and what the policy lets you do.
- Refer to content, users and groups by name: workbooks and data sources by name plus project path when a
  name is ambiguous (e.g. project "Sales/EMEA"), users by sign-in name or email, groups by name. Ids work too.
- Lists are paged: each result gives `total` (all matches) and `next_cursor`; pass `next_cursor` back as
  `cursor` with the same filters to get the next page. Never assume the first page is everything.
- Writes may need an administrator's approval. Such a call returns status "pending_approval" with a request id;
  tell the user an admin must approve it, and check later with get_request (it runs on its own once approved);
  cancel_request withdraws it while it waits. You cannot approve anything.
- Send only the arguments a tool declares: an unknown one is an error naming the closest valid one.
- Errors explain what went wrong and what to try next; read them and adjust the call.
"""


def _flat_signature(spec: ToolSpec, result_model: type[BaseModel]) -> inspect.Signature:
    """The input model's fields as top-level keyword parameters, so the model sees a flat schema."""
    parameters = []
    for name, info in spec.input_model.model_fields.items():
        schema_field = Field(
            description=info.description, examples=info.examples, json_schema_extra=info.json_schema_extra
        )
        annotation = Annotated[(info.annotation, *info.metadata, schema_field)]
        default = inspect.Parameter.empty if info.is_required() else info.get_default(call_default_factory=True)
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    parameters.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    return inspect.Signature(parameters, return_annotation=result_model)


class _RawArguments(ArgModelBase):
    """Hands the tool the arguments exactly as sent, so `parse_arguments` sees unknown names too.

    The SDK's own argument model would drop unknown names silently and word its errors as pydantic does.
    """

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _make_handler(spec: ToolSpec, pipeline: CallPipeline) -> Callable[..., Any]:
    result_model = result_model_for(spec)

    async def handler(ctx: Context, **arguments: Any) -> BaseModel:
        try:
            args = parse_arguments(spec.input_model, arguments)
        except ArgumentError as exc:
            raise ToolError(f"Invalid arguments: {exc}") from None
        return await pipeline.call(spec, args, ctx)

    signature = _flat_signature(spec, result_model)
    handler.__signature__ = signature  # type: ignore[attr-defined]
    handler.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    handler.__annotations__["return"] = result_model
    handler.__name__ = spec.name
    handler.__doc__ = spec.description
    return handler


def _tool(spec: ToolSpec, pipeline: CallPipeline) -> Tool:
    """The MCP tool for `spec`: the flat schema, closed to undeclared names, over the raw arguments."""
    tool = Tool.from_function(
        _make_handler(spec, pipeline),
        name=spec.name,
        title=spec.title,
        description=spec.description,
        annotations=spec.annotations,
        structured_output=True,
    )
    tool.parameters["additionalProperties"] = False
    tool.fn_metadata.arg_model = _RawArguments
    tool.fn_metadata.output_schema = nullable_as_type_list(tool.fn_metadata.output_schema)
    return tool


def build_server(
    services: Services | Callable[[], AbstractAsyncContextManager[Services]],
    specs: Sequence[ToolSpec] | None = None,
    *,
    auth: dict[str, Any] | None = None,
) -> MCPServer:
    """An MCP server over `services` (ready, or an async context manager factory entered by the lifespan).

    `auth` holds the bearer-token settings (server.governed.http_auth_kwargs); with ready services they
    default to what their governance says, but a factory must pass them, since it opens only later.
    """
    if auth is None:
        if not isinstance(services, Services):
            raise ValueError("build_server with a services factory needs explicit `auth` (use {} for none)")
        auth = services.governance.mcp_auth_kwargs()
    from tools.registry import TOOLS

    tune_collector()  # once per process: start-up is done by the time a server is built
    specs = tuple(TOOLS if specs is None else specs)
    pipeline = CallPipeline(specs)

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[Services]:
        if isinstance(services, Services):
            async with pipeline.attached(services):
                yield services
            return
        async with services() as live, pipeline.attached(live):
            yield live

    pipeline.bus = InMemorySubscriptionBus()  # steward://requests/{id} updates for subscriptions/listen
    mcp = MCPServer(
        "tableau-steward",
        tools=[_tool(spec, pipeline) for spec in specs],
        title="Tableau Steward",
        version="0.1.0",
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        subscriptions=pipeline.bus,
        middleware=[pipeline.list_filter_middleware, prompt_arguments_middleware],
        **auth,
    )
    for route in pipeline.admin_routes():  # HTTP mode: the admin API shares the listener, under /admin/
        mcp.custom_route(route.path, methods=sorted(route.methods - {"HEAD"}), include_in_schema=False)(route.endpoint)
    register_resources_and_prompts(mcp, pipeline)
    mcp.pipeline = pipeline  # type: ignore[attr-defined]  # its wake() hook, for what else learns of decisions
    return mcp
