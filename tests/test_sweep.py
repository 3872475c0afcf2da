"""Sweeps under the runner launcher: shared limits, callbacks, cache, resume, progress, faults."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FAKE_KEY, REPO, Cli, cli_env, fake_model, read_pty
from fake_openai import FakeOpenAIServer, free_port

pytestmark = pytest.mark.slow
TRIVIA_CALLS = 10  # conf/questions/data/trivia.jsonl: 8 questions and a 2-turn conversation


def env() -> dict[str, str]:
    return cli_env(OPENAI_API_KEY=FAKE_KEY, PYTHONPATH=str(REPO / "tests"))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jobs_share_one_event_loop_and_one_limit(cli: Cli, fake_server: FakeOpenAIServer) -> None:
    fake_server.latency_s = 0.4
    done = cli("-m", *fake_model(fake_server), "sampling.seed=1,2,3,4", "concurrency=12", env=env())
    assert done.returncode == 0, done.stderr
    assert fake_server.request_count == 20
    assert 5 < fake_server.max_in_flight <= 12  # more than one job's calls at once, under the cap
    for job in range(4):
        assert len(lines(cli.sweep_dir / str(job) / "transcript.jsonl")) == 5
        assert (cli.sweep_dir / str(job) / ".hydra" / "config.yaml").exists()


def test_the_concurrency_limit_holds_across_jobs(cli: Cli, fake_server: FakeOpenAIServer) -> None:
    fake_server.latency_s = 0.2
    done = cli("-m", *fake_model(fake_server), "sampling.seed=1,2,3", "concurrency=2", env=env())
    assert done.returncode == 0, done.stderr
    assert fake_server.max_in_flight == 2


def test_every_job_is_set_up_before_the_first_call(cli: Cli, fake_server) -> None:
    done = cli(
        "-m",
        *fake_model(fake_server),
        "sampling.seed=1,2,3,4",
        "+hydra.callbacks.probe._target_=sweep_probe.Probe",
        env={**env(), "PROBE_START_DELAY_S": "0.3"},
    )
    assert done.returncode == 0, done.stderr
    starts = [
        json.loads((cli.sweep_dir / str(job) / "probe_start.json").read_text())["at"]
        for job in range(4)
    ]
    assert len(fake_server.arrivals) == 20
    assert max(starts) < min(fake_server.arrivals)


@pytest.mark.parametrize(
    "sweep", ["concurrency=4,8", "cache.enabled=true,false", "dry_run=true,false"]
)
def test_a_sweep_wide_setting_cannot_differ_between_jobs(cli: Cli, sweep: str) -> None:
    done = cli("-m", sweep, "system=helpful", env=env())
    assert done.returncode == 2
    key = sweep.split("=")[0]
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"runner: error: {key} differs between the jobs of this sweep")
    assert not list(cli.sweep_dir.rglob("transcript.jsonl"))


def test_a_sweep_in_batches_runs_every_batch(cli: Cli) -> None:
    """Hydra's sweeper may launch a sweep in batches: each is one event loop of its own."""
    done = cli("-m", "system=helpful,concise,expert", "hydra.sweeper.max_batch_size=2", env=env())
    assert done.returncode == 0, done.stderr
    assert "Launching 2 jobs in one event loop" in done.stdout
    assert "Launching 1 job in one event loop" in done.stdout
    for job in ("0", "1", "2"):
        assert len(lines(cli.sweep_dir / job / "transcript.jsonl")) == 5
    summary = (cli.sweep_dir / "summary.csv").read_text().splitlines()
    assert [row.split(",")[1] for row in summary[1:]] == ["helpful", "concise", "expert"]


def test_hydra_callbacks_see_finished_jobs(cli: Cli) -> None:
    done = cli(
        "-m",
        "system=helpful,concise",
        "+hydra.callbacks.probe._target_=sweep_probe.Probe",
        env=env(),
    )
    assert done.returncode == 0, done.stderr
    for job in ("0", "1"):
        probe = json.loads((cli.sweep_dir / job / "probe.json").read_text())
        assert probe["status"] == "COMPLETED"
        assert probe["records_at_job_end"] == 5  # on_job_end ran after the job's calls
        assert Path(probe["hydra_output_dir"]) == cli.sweep_dir / job  # its own HydraConfig
    assert (cli.sweep_dir / "probe_multirun_end").read_text() == "done"


def test_each_job_finishes_in_its_own_hydra_state(cli: Cli) -> None:
    """Jobs finish after the last one was set up: each gets its config, dir and log back."""
    done = cli(
        "-m",
        "system=helpful,concise,expert",
        "hydra.job.chdir=true",
        "+hydra.callbacks.probe._target_=sweep_probe.Probe",
        env=env(),
    )
    assert done.returncode == 0, done.stderr
    for job in ("0", "1", "2"):
        job_dir = cli.sweep_dir / job
        probe = json.loads((job_dir / "probe.json").read_text())
        assert Path(probe["hydra_output_dir"]) == job_dir
        assert Path(probe["cwd"]) == job_dir
        (log,) = job_dir.glob("*.log")
        reports = [line for line in log.read_text().splitlines() if "records" in line]
        assert len(reports) == 1 and reports[0].endswith(str(job_dir / "transcript.jsonl"))
    assert (cli.sweep_dir / "summary.csv").exists()


def test_a_value_resolved_by_each_job_is_its_own(cli: Cli) -> None:
    """Jobs are validated before any call; a job whose values come from its own Hydra config
    (``${hydra:job.num}``) has them resolved as it runs, while the others run on the values
    checked."""
    done = cli(
        "-m",
        "model=echo",
        "system=helpful,concise",
        "sampling.seed=1,2",
        "system.message='Job ${hydra:job.num}, ${hydra:runtime.choices.system}.'",
        "progress=false",
    )
    assert done.returncode == 0, done.stderr
    for job, system in enumerate(["helpful", "helpful", "concise", "concise"]):
        text = (cli.sweep_dir / str(job) / "transcript.jsonl").read_text()
        records = [json.loads(line) for line in text.splitlines()]
        assert len(records) == 5
        assert {r["system_message"] for r in records} == {f"Job {job}, {system}."}


def test_identical_requests_are_answered_from_the_cache(cli: Cli, fake_server) -> None:
    assert cli("-m", *fake_model(fake_server), "system=helpful,concise", env=env()).returncode == 0
    assert fake_server.request_count == 10
    again = Cli(cli.tmp)
    again.sweep_dir = cli.tmp / "sweep2"
    done = again("-m", *fake_model(fake_server), "system=helpful,concise", env=env())
    assert done.returncode == 0, done.stderr
    assert fake_server.request_count == 10  # nothing sent twice
    rows = [r for p in again.sweep_dir.glob("*/transcript.jsonl") for r in lines(p)]
    assert len(rows) == 10 and all(r["cache_hit"] and r["attempts"] == 0 for r in rows)
    first = {
        r["question"] + r["system"]: r
        for p in cli.sweep_dir.glob("*/transcript.jsonl")
        for r in lines(p)
    }
    assert all(first[r["question"] + r["system"]]["answer"] == r["answer"] for r in rows)
    assert not any(r["cache_hit"] for r in first.values())
    off = Cli(cli.tmp)
    off.run_dir = cli.tmp / "nocache"
    assert off(*fake_model(fake_server), "cache.enabled=false", env=env()).returncode == 0
    assert fake_server.request_count == 15


def test_two_processes_can_share_the_cache(cli: Cli, fake_server: FakeOpenAIServer) -> None:
    fake_server.latency_s = 0.1
    procs = []
    for name in ("a", "b"):
        other = Cli(cli.tmp)
        other.sweep_dir = cli.tmp / name
        procs.append(
            subprocess.Popen(
                other.args(
                    "-m", *fake_model(fake_server), "questions=trivia_file", "sampling.seed=1,2"
                ),
                cwd=cli.tmp,
                env=env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for name in ("a", "b"):
        rows = [r for p in (cli.tmp / name).glob("*/transcript.jsonl") for r in lines(p)]
        assert len(rows) == 2 * TRIVIA_CALLS and not any(r["error"] for r in rows)
    assert fake_server.request_count <= 4 * TRIVIA_CALLS


def test_a_killed_sweep_resumes_without_repeating_a_call(cli: Cli, fake_server) -> None:
    fake_server.latency_s = 0.25
    args = [
        "-m",
        *fake_model(fake_server),
        "questions=trivia_file",
        "sampling.seed=1,2",
        "concurrency=2",
        "cache.enabled=false",
    ]
    proc = subprocess.Popen(
        cli.args(*args),
        cwd=cli.tmp,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        written = sum(
            len(p.read_text().splitlines()) for p in cli.sweep_dir.glob("*/transcript.jsonl")
        )
        if written >= 6:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    transcripts = sorted(cli.sweep_dir.glob("*/transcript.jsonl"))
    with transcripts[0].open("a") as fh:  # as if the kill landed mid-line
        fh.write('{"record_id": "torn", "answer": "hal')
    before = (
        sum(len(lines(p)) for p in transcripts[1:])
        + len(transcripts[0].read_text().splitlines())
        - 1
    )
    assert 6 <= before < 2 * TRIVIA_CALLS
    sent_before = fake_server.request_count

    done = cli(*args, "resume=true", env=env())
    assert done.returncode == 0, done.stderr
    rows = [r for job in ("0", "1") for r in lines(cli.sweep_dir / job / "transcript.jsonl")]
    assert len(rows) == 2 * TRIVIA_CALLS
    assert len({r["record_id"] for r in rows}) == 2 * TRIVIA_CALLS  # each exactly once
    assert not any(r["error"] for r in rows)
    assert fake_server.request_count - sent_before == 2 * TRIVIA_CALLS - before
    second_turn = next(r for r in rows if r["turn"] == 2)
    assert second_turn["messages"][-2]["role"] == "assistant"  # history rebuilt from the record


@pytest.mark.parametrize("sweep", [True, False], ids=["sweep", "single run"])
def test_ctrl_c_stops_at_once_and_resume_finishes(cli: Cli, fake_server, sweep: bool) -> None:
    fake_server.latency_s = 0.5
    args = [
        *fake_model(fake_server),
        "questions=trivia_file",
        "concurrency=2",
        "cache.enabled=false",
    ]
    if sweep:
        args = ["-m", *args, "sampling.seed=1,2"]
    out_dir = cli.sweep_dir if sweep else cli.run_dir
    proc = subprocess.Popen(
        cli.args(*args),
        cwd=cli.tmp,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal, whatever the test runner does with SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        p.read_text() for p in out_dir.rglob("transcript.jsonl")
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1].startswith("runner: interrupted: the records written")
    assert "Traceback" not in stderr
    assert "Task was destroyed" not in stderr
    written = sum(len(lines(p)) for p in out_dir.rglob("transcript.jsonl"))
    calls = (2 if sweep else 1) * TRIVIA_CALLS
    assert 1 <= written < calls

    done = cli(*args, "resume=true", env=env())
    assert done.returncode == 0, done.stderr
    rows = [r for p in out_dir.rglob("transcript.jsonl") for r in lines(p)]
    assert len(rows) == len({r["record_id"] for r in rows}) == calls
    assert not any(r["error"] for r in rows)


def test_progress_is_live_on_a_terminal_and_quiet_otherwise(cli: Cli) -> None:
    quiet = cli()
    assert quiet.returncode == 0 and "errors=" not in quiet.stderr
    args = Cli(cli.tmp).args("-m", "system=helpful,concise", f"hydra.sweep.dir={cli.tmp}/tty")
    code, text = read_pty(args, cli.tmp, env())
    assert code == 0, text
    assert "10/10" in text and "errors=0" in text and "cost=$" in text


def test_faults_end_as_answers_or_error_records(cli: Cli, fake_server) -> None:
    fake_server.enqueue("429", "500", "cut", "malformed", "503", "hang")
    done = cli(
        *fake_model(fake_server),
        "concurrency=1",
        "timeout_s=1",
        "retry.initial_backoff_s=0.01",
        "retry.max_backoff_s=0.05",
        env=env(),
    )
    assert done.returncode == 0, done.stderr
    rows = lines(cli.run_dir / "transcript.jsonl")
    assert len(rows) == 5 and not any(r["error"] for r in rows)
    assert sum(r["attempts"] for r in rows) == 5 + 6


def test_a_server_that_is_down_gives_error_records_and_the_run_goes_on(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = cli(
        "model=gpt-4.1-mini",
        f"model.base_url={url}",
        "retry.max_attempts=2",
        "retry.initial_backoff_s=0.01",
        env=env(),
    )
    assert done.returncode == 3, done.stderr  # every call failed
    rows = lines(cli.run_dir / "transcript.jsonl")
    assert len(rows) == 5
    assert {r["error"]["type"] for r in rows} == {"ConnectionError"}
    assert all(r["attempts"] == 2 and r["answer"] is None for r in rows)


@pytest.mark.parametrize("launcher", ["runner", "basic"])
def test_a_sweep_in_which_every_call_failed_exits_3_saying_why_last(cli: Cli, launcher) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = cli(
        "-m",
        "model=gpt-4.1-mini",
        f"model.base_url={url}",
        "retry.max_attempts=1",
        "sampling.seed=1,2",
        f"hydra/launcher={launcher}",
        env=env(),
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "runner: error: all 10 calls failed; most common: ConnectionError (10): Connection "
        f"error. at {url}: check model.base_url and that the server is running"
    )
    assert [len(lines(cli.sweep_dir / job / "transcript.jsonl")) for job in "01"] == [5, 5]


def test_a_sweep_with_one_good_job_exits_0(cli: Cli, fake_server) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = cli(
        "-m",
        "model=gpt-4.1-mini",
        f"model.base_url={url},{fake_server.base_url}",
        "retry.max_attempts=1",
        env=env(),
    )
    assert done.returncode == 0, done.stderr
    assert "runner: error" not in done.stderr
    assert [
        sum(bool(r["error"]) for r in lines(cli.sweep_dir / job / "transcript.jsonl"))
        for job in "01"
    ] == [5, 0]


@pytest.mark.parametrize(
    "callback", [True, False], ids=["locked by the callback", "locked by the launcher"]
)
def test_a_sweep_dir_in_use_is_refused_and_left_alone(cli: Cli, fake_server, callback) -> None:
    fake_server.latency_s = 1.5  # the first is still running when the second starts
    extra = [] if callback else ["~hydra.callbacks.summary"]
    procs = {
        seed: subprocess.Popen(
            cli.args(
                "-m",
                *fake_model(fake_server),
                "system=helpful,concise",
                f"sampling.seed={seed}",
                *extra,
            ),
            cwd=cli.tmp,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    }
    outputs = {seed: proc.communicate(timeout=120) for seed, proc in procs.items()}
    codes = {seed: proc.returncode for seed, proc in procs.items()}
    assert sorted(codes.values()) == [0, 2], outputs
    winner = next(seed for seed, code in codes.items() if code == 0)
    loser = 3 - winner
    assert outputs[loser][1].splitlines()[-1] == (
        f"runner: error: {cli.sweep_dir} is in use by another runner process (pid "
        f"{procs[winner].pid}): wait for it to finish, or choose another hydra.sweep.dir"
    )
    assert "Traceback" not in outputs[loser][1]
    for job in "01":
        rows = lines(cli.sweep_dir / job / "transcript.jsonl")
        assert len(rows) == 5 and len({r["record_id"] for r in rows}) == 5
        config = (cli.sweep_dir / job / ".hydra" / "config.yaml").read_text()
        assert f"seed: {winner}\n" in config
    assert fake_server.request_count == 10
    assert (cli.sweep_dir / "summary.csv").exists() is callback
    if callback:  # locked before Hydra's sweeper writes multirun.yaml
        assert f"sampling.seed={winner}" in (cli.sweep_dir / "multirun.yaml").read_text()
