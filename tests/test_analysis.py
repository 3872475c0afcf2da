"""End-of-run analysis: scores, the summary table and CSV, the dry run."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FAKE_KEY, REPO, Cli, cli_env, fake_model

from runner.analysis.summary import format_table, summarize

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
        # 1 of 8 answers right: Wilson's 95% interval; one answer a question
        scores = ("ci95_low", "ci95_high", "ci_method", "scored", "failed", "k")
        assert [row[k] for k in scores] == ["0.0224", "0.4709", "wilson", "8", "0", "1"]
        assert row["pass_at_1"] == row["pass_at_k"] == "0.125"
        assert row["agreement"] == ""
    printed = done.stdout.splitlines()
    header = next(i for i, line in enumerate(printed) if line.startswith("job "))
    assert "p50 s" in printed[header] and len(printed[header + 1 : header + 5]) == 4
    assert printed[header].split()[-5:] == ["score", "95%", "CI", "scored", "failed"]
    assert printed[header + 5].startswith(
        "score: mean of the final answers; failed calls score 0.0"
    )


def test_failed_calls_score_zero_in_the_summary_and_for_hydra(
    cli: Cli, fake_server, tmp_path: Path
) -> None:
    """Turn 1 passes, turn 2 fails (HTTP 500, no retry), turn 3 is skipped after it: the
    summary and the value the job returns to Hydra both count 1 of 3."""
    questions = tmp_path / "chat.jsonl"
    turns = [{"question": q, "expected": "fake answer"} for q in ("One?", "Two?", "Three?")]
    questions.write_text(json.dumps({"id": "chat", "turns": turns}) + "\n", encoding="utf-8")
    fake_server.enqueue("ok", "500")
    done = cli(
        "-m",
        *fake_model(fake_server),
        "questions=trivia_file",
        f"questions.path={questions}",
        "retry.max_attempts=1",
        "+hydra.callbacks.probe._target_=sweep_probe.Probe",
        env=env() | {"OPENAI_API_KEY": FAKE_KEY},
    )
    assert done.returncode == 0, done.stderr
    with (cli.sweep_dir / "summary.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["mean_score"], row["scored"], row["failed"]) == ("0.3333", "1", "2")
    probe = json.loads((cli.sweep_dir / "0" / "probe.json").read_text())
    assert probe["return_value"] == pytest.approx(1 / 3)
    assert "failed calls score 0.0 (failed_score)" in done.stdout


@pytest.mark.timeout(600)
def test_an_optuna_sweep_maximises_the_mean_score(cli: Cli) -> None:
    """hydra-optuna-sweeper reads each job's mean score: the value the summary shows."""
    done = cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.sampler.seed=7",
        "sampling.temperature=interval(0,1)",
        # echo cuts its answers at max_tokens: 2 tokens never hold the number asked for
        "sampling.max_tokens=choice(2,50)",
        "questions=math_chat",
        "+hydra.callbacks.probe._target_=sweep_probe.Probe",
        env=env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    with (cli.sweep_dir / "summary.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4
    means = [float(row["mean_score"]) for row in table]
    assert sorted(set(means)) == [0.0, 0.125]
    for row, mean in zip(table, means, strict=True):
        probe = json.loads((cli.sweep_dir / row["job"] / "probe.json").read_text())
        assert probe["return_value"] == pytest.approx(mean, abs=1e-4)
    best = yaml.safe_load((cli.sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(means)
    assert best["best_params"]["sampling.max_tokens"] == 50


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
        "import sys; from pathlib import Path; from runner.cli.callbacks import finish; "
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
