"""Sweeps under Hydra's submitit launcher: each job in a process of its own, same results."""

import csv
import json
import os
import re
from pathlib import Path

import pytest
from conftest import FAKE_KEY, REPO, Cli, cli_env, fake_model
from fake_openai import FakeOpenAIServer, free_port

from runner.core.lock import lock_transcript

pytestmark = pytest.mark.slow
SUBMITIT = ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"]
# what differs between two runs of the same calls, whichever launcher ran them
RUN_SPECIFIC = {"created_at", "latency_s", "ttft_s", "response_id"}
TIMING_COLUMNS = {"job_dir", "latency_p50_s", "latency_p95_s"}


def env() -> dict[str, str]:
    return cli_env(OPENAI_API_KEY=FAKE_KEY, PYTHONPATH=str(REPO / "tests"))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def records(sweep_dir: Path, job: int) -> list[dict]:
    rows = lines(sweep_dir / str(job) / "transcript.jsonl")
    rows = [{k: v for k, v in r.items() if k not in RUN_SPECIFIC} for r in rows]
    return sorted(rows, key=lambda r: (r["conversation_id"], r["turn"], r["choice"]))


def summary(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open(newline="") as fh:
        return [
            {k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(fh)
        ]


def report_cells(sweep_dir: Path) -> list[str]:
    return re.findall(r'<td class="(cell[^"]*)"', (sweep_dir / "report.html").read_text())


def test_a_sweep_gives_the_same_results_as_under_the_runner_launcher(
    cli: Cli, fake_server: FakeOpenAIServer
) -> None:
    sweep = ["-m", *fake_model(fake_server), "system=helpful,concise,expert", "sampling.seed=3"]
    done = cli(*sweep, *SUBMITIT, env=env())
    assert done.returncode == 0, done.stderr
    assert fake_server.request_count == 15
    # each job ran in a process of its own, not in the one that launched the sweep
    job_logs = sorted(cli.sweep_dir.glob(".submitit/*/*_log.out"))
    assert len(job_logs) == 3
    assert all("Job completed successfully" in log.read_text() for log in job_logs)

    ours = Cli(cli.tmp)
    ours.sweep_dir, ours.cache_dir = cli.tmp / "runner-launcher", cli.tmp / "cache2"
    again = ours(*sweep, env=env())
    assert again.returncode == 0, again.stderr
    assert fake_server.request_count == 30

    for job in range(3):
        theirs = records(cli.sweep_dir, job)
        assert len(theirs) == 5 and not any(r["error"] or r["cache_hit"] for r in theirs)
        assert theirs == records(ours.sweep_dir, job)
    rows = summary(cli.sweep_dir)
    assert [(r["job"], r["system"], r["calls"], r["errors"]) for r in rows] == [
        ("0", "helpful", "5", "0"),
        ("1", "concise", "5", "0"),
        ("2", "expert", "5", "0"),
    ]
    assert rows == summary(ours.sweep_dir)
    cells = report_cells(cli.sweep_dir)
    assert cells == ["cell"] * 15
    assert cells == report_cells(ours.sweep_dir)

    # resume works per job dir: nothing is asked twice, nothing is written twice
    before = {job: (cli.sweep_dir / str(job) / "transcript.jsonl").read_text() for job in range(3)}
    resumed = cli(*sweep, *SUBMITIT, "resume=true", env=env())
    assert resumed.returncode == 0, resumed.stderr
    assert fake_server.request_count == 30
    for job in range(3):
        assert (cli.sweep_dir / str(job) / "transcript.jsonl").read_text() == before[job]


def test_a_sweep_in_which_every_call_failed_exits_3_saying_why_last(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = cli(
        "-m",
        "model=gpt-4.1-mini",
        f"model.base_url={url}",
        "retry.max_attempts=1",
        "sampling.seed=1,2",
        *SUBMITIT,
        env=env(),
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "runner: error: all 10 calls failed; most common: ConnectionError (10): Connection "
        f"error. at {url}: check model.base_url and that the server is running"
    )
    assert [len(lines(cli.sweep_dir / job / "transcript.jsonl")) for job in "01"] == [5, 5]


def test_a_job_whose_transcript_is_in_use_is_refused_in_one_line(
    cli: Cli, fake_server: FakeOpenAIServer
) -> None:
    """A job process takes its transcript's lock (never the sweep dir's, which the process that
    launched the sweep holds); its refusal reaches the command line as one line, exit 2."""
    held = cli.sweep_dir / "1" / "transcript.jsonl"
    with lock_transcript(held):
        done = cli("-m", *fake_model(fake_server), "system=helpful,concise", *SUBMITIT, env=env())
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"runner: error: {held} is in use by another runner process (pid {os.getpid()}): wait "
        "for it to finish, or choose another hydra.run.dir / hydra.sweep.dir"
    )
    assert "Traceback" not in done.stderr
    assert len(lines(cli.sweep_dir / "0" / "transcript.jsonl")) == 5
    assert not held.exists()
    assert fake_server.request_count == 5
