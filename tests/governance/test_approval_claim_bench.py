"""The approval-claim benchmark runs end to end at tiny sizes (its numbers are in BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from bench import approval_claim


def test_the_claim_benchmark_claims_each_request_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert approval_claim.main(["--window", "0,50", "--requests", "2"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in rows] == ["0", "50"] and all("claim median" in row for row in rows)
