"""Replicas sharing one PAT sign each other out (the emulator keeps one session per PAT, as Tableau does):
the operations watch says so once in the log and in its state, and counts the re-sign-ins."""

from __future__ import annotations

import logging

import pytest

from server.operations import CONTENTION_THRESHOLD, Operations
from server.tableau import TableauClient

from .conftest import settings_for, sign_ins

pytestmark = pytest.mark.anyio


async def test_two_clients_on_one_pat_are_detected_signing_each_other_out(emu, caplog) -> None:
    first_ops, second_ops = Operations(["list_users"]), Operations(["list_users"])
    first, second = TableauClient(settings_for(emu)), TableauClient(settings_for(emu))
    first.add_observer(first_ops.tableau_request)
    second.add_observer(second_ops.tableau_request)
    caplog.set_level(logging.WARNING, logger="server.operations")
    async with first, second:  # the second sign-in already ends the first's session
        for _ in range(CONTENTION_THRESHOLD + 1):
            await first.count_content("workbook")  # 401, re-sign-in: now the second is signed out
            await second.count_content("workbook")
        assert first_ops.session.contended and second_ops.session.contended
        state = first_ops.session.state()
        assert state["status"] == "contended" and "own PAT" in state["hint"]
        assert state["re_sign_ins_last_10_min"] == first.sign_ins - 1 >= CONTENTION_THRESHOLD
    warnings = [r.getMessage() for r in caplog.records if "one session per PAT" in r.getMessage()]
    assert len(warnings) == 2  # one line per client, not one per re-sign-in
    assert "connected app" in warnings[0]
    assert sign_ins(emu) == first.sign_ins + second.sign_ins
    metrics = first_ops.metrics_text().decode()
    assert f"steward_tableau_re_sign_ins_total {float(first.sign_ins - 1)}" in metrics
    assert 'steward_tableau_requests_total{status="401"}' in metrics


async def test_one_client_is_not_contended(emu) -> None:
    ops = Operations([])
    client = TableauClient(settings_for(emu))
    client.add_observer(ops.tableau_request)
    async with client:
        for _ in range(CONTENTION_THRESHOLD + 1):
            await client.count_content("workbook")
        assert ops.session.state() == {"status": "signed_in", "sign_ins": 1, "re_sign_ins_last_10_min": 0}
