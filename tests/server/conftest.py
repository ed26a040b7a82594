"""A Tableau Steward server on an emulated site, reached through a real `mcp.Client`."""

from __future__ import annotations

import copy
import functools
import json
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from emulator import model as m
from emulator.runner import EmulatorServer
from emulator.testing import DEMO_PAT, add_admin_pat, start_emulator

# Everything allowed for the local principal: tool tests exercise tools, not policy.
OPEN_POLICY = """\
version: 1
mode: read-write
local:
  principal: tester
  roles: [admin]
roles:
  admin: {}
rules:
  - id: everything
    tools: ["*"]
    resources: ["*"]
    prompts: ["*"]
    roles: [admin]
    effect: allow
approvals:
  approvers: {roles: [admin]}
audit:
  path: audit.sqlite
"""


def write_policy(directory: Path, text: str = OPEN_POLICY) -> Path:
    path = directory / "policies.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@dataclass
class Steward:
    """An emulated site plus everything needed to open MCP clients on a governed server against it."""

    emulator: EmulatorServer
    policy_path: Path
    server: Any = None  # the MCPServer of the last `client()`, for tests that run held approvals by hand

    @property
    def state(self) -> m.SiteState:
        return self.emulator.state

    def settings(self, **tunables: Any):
        from server.config import Settings

        return Settings.for_pat(self.emulator.url, self.state.content_url, *DEMO_PAT, **tunables)

    @asynccontextmanager
    async def services(self, **tunables: Any) -> AsyncIterator[Any]:
        async with self.services_with(self.settings(**tunables)) as services:
            yield services

    @asynccontextmanager
    async def services_with(self, settings: Any) -> AsyncIterator[Any]:
        from server.governed import Governance
        from server.pipeline import Services
        from server.tableau import TableauClient
        from server.tableau.identities import UserSessions

        governance = Governance.open(self.policy_path)
        try:
            tableau = TableauClient(settings)
            governance.observe(tableau)  # as the server does: the sign-in is audited too
            identities = UserSessions(settings) if governance.per_user else None
            async with tableau:
                try:
                    yield Services(tableau=tableau, governance=governance, identities=identities)
                finally:
                    if identities is not None:
                        await identities.close()
        finally:
            governance.close()

    @asynccontextmanager
    async def client(self, **client_kwargs: Any) -> AsyncIterator[Client]:
        from server.app import build_server

        async with self.services() as services:
            self.server = build_server(services)
            async with Client(self.server, **client_kwargs) as client:
                yield client

    async def run_held(self, client: Client, request_id: str) -> dict[str, Any]:
        """Run an approved request now (the wake-up and poll are held off) and return get_request's view."""
        await self.server.pipeline.run_approved(request_id)
        return structured(await client.call_tool("get_request", {"request_id": request_id}))

    def requests_since(self, mark: int) -> list[Any]:
        return list(self.emulator.request_log)[mark:]


@functools.lru_cache(maxsize=2)
def _generated(size: str) -> m.SiteState:
    from emulator.generator import build_site

    return build_site(size=size, seed=7, content_url="demo")


def site_copy(size: str = "demo") -> m.SiteState:
    site = copy.deepcopy(_generated(size))
    add_admin_pat(site)
    return site


@pytest.fixture
def steward(tmp_path: Path):
    site = site_copy()
    with start_emulator(site, job_speed=200) as emu:
        yield Steward(emulator=emu, policy_path=write_policy(tmp_path))


def structured(result: Any) -> dict[str, Any]:
    """The structured result of a successful call (failing the test with the error text otherwise)."""
    assert not result.is_error, result.content[0].text if result.content else result
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def settled(client: Client, request_id: str) -> dict[str, Any]:
    """get_request until the approved request has run (a bounded wait: the server runs it on its own); its view."""
    import anyio

    with anyio.fail_after(30):
        while (view := structured(await client.call_tool("get_request", {"request_id": request_id})))["status"] in (
            "approved",
            "executing",
        ):
            await anyio.sleep(0.05)
    return view


def error_text(result: Any) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return result.content[0].text
