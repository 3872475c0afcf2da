"""End-of-run analysis: scores, the summary table and CSV, the dry run."""

import csv
import json
import subprocess
import sys

import pytest
from conftest import REPO, Cli, cli_env, fake_model

from runner.summary import format_table, summarize

pytestmark = pytest.mark.slow


def env() -> dict[str, str]:
    return cli_env(PYTHONPATH=str(REPO / "tests"))


def test_records_are_scored_and_the_job_returns_its_mean_score(cli: Cli) -> None:
    done = cli(
        "-m",
        "questions=math_chat",
        "system=helpful,concise",
        "+hydra.callbacks.probe._target_=sweep_probe.Probe",
        env=env(),
    )
    assert done.returncode == 0, done.stderr
    transcript = cli.sweep_dir / "0" / "transcript.jsonl"
    rows = [json.loads(line) for line in transcript.read_text().splitlines()]
    scores = {(r["conversation_id"], r["turn"]): r["score"] for r in rows}
    # echo repeats the question: "What is 144 divided by 12?" ends in the expected 12
    assert scores[("divide_square_subtract", 1)] == 1.0
    assert scores[("times_then_add", 1)] == 0.0
    probe = json.loads((cli.sweep_dir / "0" / "probe.json").read_text())
    assert probe["return_value"] == pytest.approx(sum(scores.values()) / len(scores))


def test_a_sweep_ends_with_a_summary_table_and_csv(cli: Cli) -> None:
    done = cli("-m", "system=helpful,concise", "sampling.temperature=0,0.7", "questions=math_chat")
    assert done.returncode == 0, done.stderr
    with (cli.sweep_dir / "summary.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4
    assert list(table[0])[:3] == ["job", "system", "sampling.temperature"]
    assert {(r["system"], r["sampling.temperature"]) for r in table} == {
        ("helpful", "0"),
        ("helpful", "0.7"),
        ("concise", "0"),
        ("concise", "0.7"),
    }
    for row in table:
        assert row["calls"] == "8" and row["errors"] == "0"
        assert int(row["prompt_tokens"]) > 0 and int(row["completion_tokens"]) > 0
        assert float(row["latency_p50_s"]) <= float(row["latency_p95_s"])
        assert float(row["mean_score"]) == pytest.approx(0.125)
        assert row["cost_usd"] == "0.0"
    printed = done.stdout.splitlines()
    header = next(i for i, line in enumerate(printed) if line.startswith("job "))
    assert "p50 s" in printed[header] and len(printed[header + 1 : header + 5]) == 4


def test_a_single_run_gets_a_summary_too(cli: Cli) -> None:
    assert cli("questions=math_chat").returncode == 0
    with (cli.run_dir / "summary.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["calls"] == "8"


def test_the_summary_is_built_from_files_alone(cli: Cli) -> None:
    """Jobs may have run in other processes: a fresh process summarizes the sweep dir."""
    assert cli("-m", "system=helpful,concise").returncode == 0
    (cli.sweep_dir / "summary.csv").unlink()
    code = (
        "import sys; from pathlib import Path; from runner.callbacks import finish; "
        "finish(Path(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(cli.sweep_dir)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (cli.sweep_dir / "summary.csv").exists()
    assert format_table(summarize(cli.sweep_dir)) in done.stdout


def test_dry_run_counts_calls_tokens_and_worst_case_cost_without_calling(
    cli: Cli, fake_server
) -> None:
    # no API key in the environment: a dry run needs none
    done = cli(
        "-m",
        "dry_run=true",
        *fake_model(fake_server),
        "system=helpful,concise",
        "questions=math_chat",
        "sampling.max_tokens=100",
    )
    assert done.returncode == 0, done.stderr
    assert fake_server.request_count == 0
    assert not list(cli.tmp.rglob("transcript.jsonl"))
    lines = done.stdout.splitlines()
    jobs = [line for line in lines if line.startswith("#")]
    assert len(jobs) == 2 and all(" 8 " in line for line in jobs)
    total = next(line for line in lines if line.startswith("total"))
    calls, tokens, cost = total.split()[-3:]
    assert calls == "16" and int(tokens.replace(",", "")) > 0
    # gpt-4.1-mini: $0.4 in / $1.6 out per 1M; every answer 100 tokens at worst
    assert float(cost) >= 16 * 100 * 1.6 / 1e6


def test_dry_run_of_a_single_run(cli: Cli) -> None:
    done = cli("dry_run=true", "model=gpt-6-luna")
    assert done.returncode == 0, done.stderr
    assert "total (dry run: nothing was sent)" in done.stdout
    assert not (cli.run_dir / "transcript.jsonl").exists()
