"""The audit benchmark runs end to end (tiny sizes) and maintains only its own BENCHMARKS.md section."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import audit_throughput


def test_benchmark_runs_and_updates_only_its_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## Someone else's section\n\nkeep me\n")
    argv = [
        "--records",
        "40",
        "--pairs",
        "10",
        "--settle",
        "0",
        "--dir",
        str(tmp_path / "stores"),
        "--update",
        str(doc),
    ]
    assert (
        audit_throughput.main([*argv, "--runs", "3"]) == 0
    )  # unknown options (for other modules) are ignored
    assert audit_throughput.main(argv) == 0
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## Someone else's section\n\nkeep me\n")
    assert text.count(audit_throughput.SECTION_START) == 1 and text.count(audit_throughput.SECTION_END) == 1
    assert "| 1 thread, records/s |" in text and "intent+outcome pair, median" in text
    assert "## Audit log throughput" in capsys.readouterr().out


def test_policy_yaml_bench_runs_and_sees_the_bomb_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import policy_yaml

    assert policy_yaml.main(["--levels", "9", "--baseline-levels", "3"]) == 0
    out = capsys.readouterr().out
    assert "387,420,489 values" in out and "refused YAML" in out


def test_the_postgres_benchmarks_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import approval_wakeup

    argv = ["--records", "20", "--pairs", "5", "--settle", "0", "--dir", str(tmp_path / "stores"), "--postgres"]
    assert audit_throughput.main(argv) == 0
    out = capsys.readouterr().out
    assert "PostgreSQL synchronous_commit=on" in out and "on PostgreSQL." in out
    assert approval_wakeup.main(["--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| LISTEN/NOTIFY (PostgreSQL replicas) |" in out and "poll" in out
