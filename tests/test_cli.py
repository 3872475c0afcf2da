"""``python -m runner`` as a user runs it: a subprocess, output under tmp_path."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAKE_KEY, Cli, cli_env, fake_model, read_pty
from fake_openai import free_port

from runner import load_results
from runner.analysis.summary import describe_failures
from runner.base.record import TranscriptRecord
from runner.base.transcript import TranscriptWriter
from runner.core.files import CONF_DIR

pytestmark = pytest.mark.slow
TRIVIA_CALLS = 10  # questions/data/trivia.jsonl: 8 questions and a 2-turn conversation
FIELDS = {f.name for f in dataclasses.fields(TranscriptRecord)} - {"extra"}


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_single_run_writes_a_full_record_per_call(cli: Cli) -> None:
    done = cli("sampling.seed=7")
    assert done.returncode == 0, done.stderr
    rows = records(cli.run_dir / "transcript.jsonl")
    assert len(rows) == 5
    for row in rows:
        assert set(row) == FIELDS
        assert row["offline"] is True and row["model"] == "echo" and row["base_url"] is None
        assert row["overrides"][0] == "sampling.seed=7" and row["params"] == {"seed": 7}
        assert row["answer"] == row["question"]  # echo
        assert row["usage"]["source"] == "api"
        assert row["usage"]["prompt_tokens"] == row["estimated_prompt_tokens"]
        assert row["cost_usd"] == 0.0 and row["error"] is None and row["attempts"] == 1
        assert row["messages"][0]["role"] == "system" and row["messages"][-1]["role"] == "user"
    assert len({r["record_id"] for r in rows}) == 5
    assert (cli.run_dir / ".hydra" / "config.yaml").exists()


@pytest.mark.needs_encodings  # the two system messages' exact token counts differ
def test_sweep_writes_one_transcript_per_job_and_loads_into_pandas(cli: Cli) -> None:
    done = cli("-m", "model=echo", "system=helpful,concise", "sampling.temperature=0,0.7")
    assert done.returncode == 0, done.stderr
    transcripts = sorted(cli.sweep_dir.glob("*/transcript.jsonl"))
    assert [p.parent.name for p in transcripts] == ["0", "1", "2", "3"]
    for path in transcripts:
        assert len(records(path)) == 5
        assert (path.parent / ".hydra" / "overrides.yaml").exists()
    df = load_results(cli.sweep_dir)
    assert len(df) == 20
    assert sorted(df["sampling.temperature"].unique()) == [0.0, 0.7]
    assert set(df["system"]) == {"helpful", "concise"}
    assert set(df["params.temperature"]) == {0.0, 0.7}
    table = df.pivot_table(
        index="system", columns="sampling.temperature", values="usage.prompt_tokens", aggfunc="sum"
    )
    assert table.shape == (2, 2)
    assert (table.loc["concise"] != table.loc["helpful"]).all()


def test_conversations_carry_history_and_trim_it(cli: Cli) -> None:
    assert cli("questions=math_chat").returncode == 0
    rows = {(r["conversation_id"], r["turn"]): r for r in records(cli.run_dir / "transcript.jsonl")}
    second = rows[("times_then_add", 2)]
    assert [m["content"] for m in second["messages"][1:]] == [
        "What is 12 times 7?",
        "What is 12 times 7?",
        "Now add 16 to that.",
    ]
    assert second["dropped_messages"] == 0 and second["expected"] == "100"
    (cli.tmp / "trimmed").mkdir()
    trimmed = Cli(cli.tmp / "trimmed")
    assert trimmed("questions=math_chat", "max_history=1").returncode == 0
    third = {
        (r["conversation_id"], r["turn"]): r for r in records(trimmed.run_dir / "transcript.jsonl")
    }[("divide_square_subtract", 3)]
    assert third["dropped_messages"] == 2 and len(third["messages"]) == 4


@pytest.mark.needs_encodings  # which questions fit the budget depends on exact counts
def test_a_question_over_the_budget_is_an_error_record(cli: Cli) -> None:
    done = cli("questions=math_chat", "token_budget=40", "sampling.max_tokens=8")
    assert done.returncode == 0, done.stderr
    rows = records(cli.run_dir / "transcript.jsonl")
    errors = [r for r in rows if r["error"]]
    assert errors and {r["error"]["type"] for r in errors} <= {"BudgetError", "Skipped"}
    assert all(r["answer"] is None and r["messages"] == [] for r in errors)
    assert len(rows) == 8  # every planned turn has a record


BAD_INPUT = [
    (["model=gpt-7"], "unknown model preset 'gpt-7': choose one of echo"),
    (["sampling.temperature=hot"], "sampling.temperature=hot is not a number"),
    (
        ["sampling.temperatur=1"],
        "unknown key sampling.temperatur: did you mean sampling.temperature?",
    ),
    (["temprature=1"], "did you mean sampling.temperature?"),
    (
        ["+sampling.temprature=1"],  # "+" skips Hydra's check; the runner's still sees it
        "unknown key sampling.temprature: did you mean sampling.temperature?",
    ),
    (["-m", "system=helpful,concise", "+model.foo=1"], "unknown key model.foo: known keys"),
    (["questions.path=missing.jsonl"], "questions file missing.jsonl not found"),
    (
        ["-m", "system=helpful,concise", "questions.path=missing.jsonl"],
        "questions file missing.jsonl not found",
    ),
    (["-m", "system=helpful,concise", "model=gpt-6-luna"], "OPENAI_API_KEY"),
    (["-m", "system=helpful,concise", "retry.max_backoff_s=-1"], "is out of range"),
    (["model=gpt-6-luna"], "set the environment variable OPENAI_API_KEY"),
    (
        ["model=gpt-6-luna", "sampling.temperature=0.5"],
        "model gpt-6-luna does not accept sampling.temperature=0.5",
    ),
    (
        ["-m", "model=echo,gpt-6-luna", "sampling=deterministic"],
        "model gpt-6-luna does not accept sampling.temperature=0.0",
    ),
    (
        ["model=gpt-4.1-mini", "model.base_url=localhost:8000/v1"],
        "model.base_url='localhost:8000/v1' is not an http:// or https:// URL: "
        "write it as http://host:port/v1",
    ),
    (["retry.max_backoff_s=-1"], "retry.max_backoff_s=-1.0 is out of range"),
    (
        ["model=/etc/passwd"],
        "model=/etc/passwd: a preset name must name a file in the config tree's model/ folder, "
        "e.g. model=echo",
    ),
    (
        ["-m", "system=helpful,../../../etc/x"],
        "system=../../../etc/x: a preset name must name a file in the config tree's system/ "
        "folder, e.g. system=concise",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_a_nonzero_exit(cli: Cli, overrides, message: str) -> None:
    env = cli_env(OPENAI_API_KEY=FAKE_KEY) if "sampling" in " ".join(overrides) else cli_env()
    done = cli(*overrides, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("runner: error: ") and message in lines[-1], done.stderr
    assert "Traceback" not in done.stderr and "Error executing job" not in done.stderr
    assert not list(cli.tmp.rglob("transcript.jsonl"))  # caught before any call
    assert not cli.run_dir.exists() and not cli.sweep_dir.exists()  # and no empty output dir


def test_run_control_overrides_stay_out_of_records_and_columns(cli: Cli) -> None:
    from runner import load_results

    done = cli("sampling.seed=3", "progress=false", "cache.enabled=false", "retry.max_attempts=2")
    assert done.returncode == 0, done.stderr
    assert {tuple(r["overrides"]) for r in records(cli.run_dir / "transcript.jsonl")} == {
        ("sampling.seed=3",)
    }
    df = load_results(cli.run_dir)
    assert df.attrs["swept_keys"] == ["sampling.seed"]
    assert not {"progress", "cache.enabled", "retry.max_attempts"} & set(df.columns)


def test_malformed_questions_file_names_file_and_line(cli: Cli) -> None:
    bad = cli.tmp / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "fine"}\n{"id": "b", "question": oops}\n')
    done = cli(f"questions.path={bad}", "questions.items=[]")
    assert done.returncode == 2
    assert f"runner: error: {bad}, line 2: not valid JSON" in done.stderr


def test_rerunning_into_a_used_run_dir_asks_for_resume(cli: Cli) -> None:
    assert cli().returncode == 0
    kept = (cli.run_dir / "transcript.jsonl").read_bytes()
    again = cli()
    assert again.returncode == 2 and "pass resume=true" in again.stderr
    assert (cli.run_dir / "transcript.jsonl").read_bytes() == kept  # a failed start's dir stays


@pytest.mark.parametrize(
    ("multirun", "overrides", "message"),
    [
        # Each fails once the output dir is made: the cache is opened by the run's job, and
        # a sweep's jobs are composed and checked by its launcher, after Hydra's sweeper
        # wrote multirun.yaml.
        (False, ["cache.dir={taken}"], "cannot be opened"),
        (True, ["system=helpful,concise", "cache.dir={taken}"], "cannot be opened"),
        (True, ["model=echo,gpt-6-luna"], "set the environment variable OPENAI_API_KEY"),
        (True, ["system=helpful,concise", "+model.foo=1"], "unknown key model.foo"),
    ],
)
def test_a_start_that_fails_takes_away_the_output_dir_it_made(
    cli: Cli, multirun: bool, overrides: list[str], message: str
) -> None:
    (cli.tmp / "taken").write_text("not a directory\n")
    cli.cache_dir = cli.tmp / "taken"
    cli.run_dir = cli.tmp / "out" / "day" / "run"
    cli.sweep_dir = cli.tmp / "out" / "day" / "sweep"
    (cli.tmp / "out").mkdir()  # was there before: stays
    args = [o.format(taken=cli.tmp / "taken") for o in overrides]
    done = cli(*(["-m"] if multirun else []), *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr.splitlines()[-1]
    assert list((cli.tmp / "out").iterdir()) == []  # day/ and run/ (or sweep/) made, then gone


def test_a_failed_start_keeps_a_dir_that_holds_anything_else(cli: Cli) -> None:
    (cli.tmp / "taken").write_text("not a directory\n")
    cli.cache_dir = cli.tmp / "taken"
    cli.run_dir = cli.tmp / "new"
    done = cli("hydra.job.name=mine")
    assert done.returncode == 2, done.stderr
    assert not cli.run_dir.exists()  # what a start writes: .hydra/, mine.log, .runner.lock
    cli.run_dir.mkdir()
    (cli.run_dir / "notes.txt").write_text("mine\n")
    done = cli()
    assert done.returncode == 2, done.stderr
    assert sorted(p.name for p in cli.run_dir.iterdir()) == [
        ".hydra",
        ".runner.lock",
        "notes.txt",
        "runner.log",
    ]


def test_paths_printed_at_the_end_are_absolute(tmp_path: Path) -> None:
    """Relative output dirs (the defaults are) still print paths that work from anywhere."""
    for args in (
        ["hydra.run.dir=out/run"],
        ["-m", "system=helpful,concise", "hydra.sweep.dir=out/sw"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "runner", *args, "cache.dir=cache"],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        base = tmp_path / "out" / ("run" if args[0].startswith("hydra") else "sw")
        logged = done.stdout + done.stderr
        transcripts = re.findall(r" -> (\S+transcript\.jsonl)$", logged, re.M)
        assert transcripts and all(Path(t).is_absolute() and Path(t).is_file() for t in transcripts)
        assert f"summary: {base / 'summary.csv'}, report: {base / 'report.html'}" in logged


def test_real_wire_path_records_the_servers_usage_and_id(cli: Cli, fake_server) -> None:
    done = cli(*fake_model(fake_server), env=cli_env(OPENAI_API_KEY=FAKE_KEY))
    assert done.returncode == 0, done.stderr
    rows = records(cli.run_dir / "transcript.jsonl")
    assert len(rows) == 5 and fake_server.request_count == 5
    for row in rows:
        assert row["offline"] is False and row["base_url"] == fake_server.base_url
        assert row["response_id"].startswith("chatcmpl-fake-")
        assert row["answer"] == "fake answer to: " + row["question"]
        assert row["usage"]["source"] == "api"
        assert row["usage"]["completion_tokens"] == len(row["answer"].split())
        server_count = sum(7 + len(m["content"].split()) for m in row["messages"])
        assert row["usage"]["prompt_tokens"] == server_count  # the server's figure, not ours
        assert row["cost_usd"] > 0 and row["served_model"] == "gpt-4.1-mini"
    assert all(
        body["stream"] and body["stream_options"] == {"include_usage": True}
        for body in fake_server.requests
    )


def test_a_server_without_usage_falls_back_to_tiktoken(cli: Cli, fake_server) -> None:
    fake_server.send_usage = False
    done = cli(*fake_model(fake_server), env=cli_env(OPENAI_API_KEY=FAKE_KEY))
    assert done.returncode == 0, done.stderr
    for row in records(cli.run_dir / "transcript.jsonl"):
        assert row["usage"]["source"] == "estimate"
        assert row["usage"]["prompt_tokens"] == row["estimated_prompt_tokens"] > 0
        assert row["usage"]["completion_tokens"] > 0 and row["cost_usd"] > 0


def test_records_are_on_disk_as_each_call_completes(cli: Cli, fake_server) -> None:
    fake_server.latency_s = 0.6
    proc = subprocess.Popen(
        cli.args(*fake_model(fake_server), "concurrency=1"),
        cwd=cli.tmp,
        env=cli_env(OPENAI_API_KEY=FAKE_KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    transcript = cli.run_dir / "transcript.jsonl"
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if transcript.exists():
            seen.add(len(transcript.read_text().splitlines()))
        time.sleep(0.05)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert {1, 2, 3, 4} <= seen  # each line was on disk while later calls were still running
    assert len(records(transcript)) == 5


def test_the_api_key_is_written_nowhere(cli: Cli, fake_server) -> None:
    fake_server.enqueue("401")
    done = cli(
        "-m", *fake_model(fake_server), "sampling.seed=1,2", env=cli_env(OPENAI_API_KEY=FAKE_KEY)
    )
    assert done.returncode == 0, done.stderr
    assert FAKE_KEY not in done.stdout + done.stderr
    files = [p for p in cli.tmp.rglob("*") if p.is_file()]
    assert any(p.name == "transcript.jsonl" for p in files) and any(
        ".hydra" in str(p) for p in files
    )
    for path in files:
        assert FAKE_KEY.encode() not in path.read_bytes(), path
    assert any(
        r["error"]
        for r in records(cli.sweep_dir / "0" / "transcript.jsonl")
        + records(cli.sweep_dir / "1" / "transcript.jsonl")
    )


def imported(cli: Cli, *args: str) -> set[str]:
    """The top-level packages ``python -m runner ARGS`` imports (``-X importtime``)."""
    done = subprocess.run(
        [*cli.args()[:1], "-X", "importtime", *cli.args(*args)[1:]],
        cwd=cli.tmp,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return {
        line.split("|")[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }


def test_start_up_does_not_import_pandas_or_ipython(cli: Cli) -> None:
    modules = imported(cli)
    assert "hydra" in modules and "openai" in modules
    assert "pandas" not in modules and "IPython" not in modules


@pytest.mark.parametrize("args", [["--help"], ["dry_run=true"], ["--cfg", "job"]])
def test_what_makes_no_call_does_not_import_openai(cli: Cli, args: list[str]) -> None:
    modules = imported(cli, *args)
    assert "hydra" in modules and "openai" not in modules


def copy_of_conf(tmp: Path) -> Path:
    """A copy of the packaged config tree that a test may break."""
    tree = (tmp / "conf").resolve()
    shutil.copytree(CONF_DIR, tree)
    return tree


def assert_one_line(done: subprocess.CompletedProcess[str], line: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"runner: error: {line}", done.stderr
    assert "Traceback" not in done.stderr and "Error executing job" not in done.stderr


YAML_FIX = "fix the YAML there (indentation, a missing ':' or an unclosed quote or bracket)"


@pytest.mark.parametrize(
    ("text", "multirun", "where"),
    [
        (
            "name: pirate\n  message: Arr.\n",
            False,
            ", line 2, column 10: not valid YAML (mapping values are not allowed here)",
        ),
        (
            "name: pirate\n  message: Arr.\n",
            True,
            ", line 2, column 10: not valid YAML (mapping values are not allowed here)",
        ),
        (
            "name: pirate\nname: parrot\nmessage: Arr.\n",
            False,
            ", line 2, column 1: not valid YAML (found duplicate key name, "
            "while constructing a mapping at line 1, column 1)",
        ),
        (
            'name: pirate\nmessage: "Arr.\x07"\n',
            False,
            ": not valid YAML (unacceptable character #x0007: special characters are not allowed)",
        ),
    ],
)
def test_a_malformed_preset_names_its_file_and_line(
    cli: Cli, text: str, multirun: bool, where: str
) -> None:
    tree = copy_of_conf(cli.tmp)
    (tree / "system" / "pirate.yaml").write_text(text)
    choice = ["-m", "system=helpful,pirate"] if multirun else ["system=pirate"]
    done = cli("--config-path", str(tree), *choice)
    assert_one_line(done, f"{tree}/system/pirate.yaml{where}: {YAML_FIX}")
    assert not list(cli.tmp.rglob("transcript.jsonl"))


def test_a_malformed_settings_file_names_its_file(cli: Cli) -> None:
    tree = copy_of_conf(cli.tmp)
    lines = (tree / "runner.yaml").read_text().splitlines()
    number = next(n for n, line in enumerate(lines) if line.startswith("concurrency:"))
    lines[number] = lines[number].replace("concurrency: 16", "concurrency: [16")
    (tree / "runner.yaml").write_text("\n".join(lines) + "\n")
    done = cli("--config-path", str(tree))
    assert_one_line(
        done,
        f"{tree}/runner.yaml, line {number + 2}, column 1: not valid YAML (expected ',' or ']', "
        f"but got '<scalar>', while parsing a flow sequence at line {number + 1}, column 14): "
        + YAML_FIX,
    )


def test_a_preset_from_outside_the_config_tree_is_refused(cli: Cli) -> None:
    (cli.tmp / "outside.yaml").write_text("name: outside\nmessage: not from conf/system\n")
    choice = os.path.relpath(cli.tmp / "outside", CONF_DIR / "system")
    done = cli(f"system={choice}")
    assert_one_line(
        done,
        f"system={choice}: a preset name must name a file in the config tree's system/ folder, "
        "e.g. system=concise",
    )
    assert not list(cli.tmp.rglob("transcript.jsonl"))


OUTPUT_FIX = (
    "choose another hydra.run.dir (hydra.sweep.dir with -m), or a directory you can write to"
)


@pytest.mark.parametrize(
    ("where", "under", "multirun", "why"),
    [
        ("run_dir", "", False, "it exists and is not a directory"),
        ("run_dir", "sub", False, "a part of it is a file, not a directory"),
        ("sweep_dir", "", True, "it exists and is not a directory"),
        ("sweep_dir", "sub", True, "a part of it is a file, not a directory"),
    ],
)
def test_an_output_dir_that_is_a_file_is_one_line(
    cli: Cli, where: str, under: str, multirun: bool, why: str
) -> None:
    taken = cli.tmp / "taken"
    taken.write_text("not a directory\n")
    setattr(cli, where, taken / under if under else taken)
    done = cli(*(["-m", "system=helpful,concise"] if multirun else []))
    assert_one_line(done, f"cannot write {getattr(cli, where)} ({why}): {OUTPUT_FIX}")


def read_only(directory: Path) -> None:
    """Make ``directory`` refuse new entries, for root too (root ignores mode bits, so it gets
    the immutable attribute)."""
    directory.chmod(0o555)
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"root ignores read-only modes and chattr +i failed: {done.stderr!r}")


def test_a_read_only_output_dir_is_one_line(cli: Cli) -> None:
    parent = cli.tmp / "locked"
    parent.mkdir()
    read_only(parent)
    cli.run_dir = parent / "run"
    try:
        done = cli()
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(parent)], check=True)
        parent.chmod(0o755)
    assert_one_line(done, f"cannot write {cli.run_dir} (permission denied): {OUTPUT_FIX}")


@pytest.mark.parametrize("multirun", [False, True])
@pytest.mark.parametrize("under", ["", "sub"])
def test_a_cache_dir_that_cannot_be_opened_is_one_line(
    cli: Cli, under: str, multirun: bool
) -> None:
    taken = cli.tmp / "taken"
    taken.write_text("not a directory\n")
    cli.cache_dir = taken / under if under else taken
    done = cli(*(["-m", "system=helpful,concise"] if multirun else []))
    assert_one_line(
        done,
        f"cache.dir={cli.cache_dir} cannot be opened ({taken} is a file, not a directory): "
        "choose another cache.dir, or set cache.enabled=false",
    )
    assert not list(cli.tmp.rglob("transcript.jsonl"))


def test_a_run_in_which_every_call_failed_exits_3_saying_why_last(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = cli(
        "model=gpt-4.1-mini",
        f"model.base_url={url}",
        "retry.max_attempts=1",
        env=cli_env(OPENAI_API_KEY=FAKE_KEY),
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"runner: error: all 5 calls failed; most common: ConnectionError (5): Connection error. "
        f"at {url}: check model.base_url and that the server is running"
    )
    assert len(records(cli.run_dir / "transcript.jsonl")) == 5
    assert (cli.run_dir / "summary.csv").exists()  # the summary is still written


def test_a_run_with_one_success_exits_0(cli: Cli, fake_server) -> None:
    fake_server.enqueue("401", "401", "401", "401")
    done = cli(
        *fake_model(fake_server), "retry.max_attempts=1", env=cli_env(OPENAI_API_KEY=FAKE_KEY)
    )
    assert done.returncode == 0, done.stderr
    assert "runner: error" not in done.stderr
    errors = [r["error"] for r in records(cli.run_dir / "transcript.jsonl")]
    assert [e["type"] for e in errors if e] == ["AuthenticationError"] * 4 and errors.count(
        None
    ) == 1


def _failed(conversation: str, turn: int, kind: str, message: str, base_url: str | None) -> dict:
    return {
        "conversation_id": conversation,
        "turn": turn,
        "base_url": base_url,
        "answer": None,
        "error": {"type": kind, "message": message, "status": None},
    }


def test_skipped_turns_count_as_failed_but_do_not_name_the_cause(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v1"
    with TranscriptWriter(tmp_path / "0" / "transcript.jsonl") as writer:
        writer.write(_failed("a", 1, "ConnectionError", "Connection error.", url))
        for turn in (2, 3):
            writer.write(_failed("a", turn, "Skipped", "not asked: turn 1 failed", url))
    with TranscriptWriter(tmp_path / "1" / "transcript.jsonl") as writer:
        writer.write(_failed("b", 1, "InternalServerError", "Error code: 500", "http://x/v1"))
        writer.write(_failed("c", 1, "ConnectionError", "Connection\n  refused.", url))
    assert describe_failures(tmp_path) == (
        "all 5 calls failed; most common: ConnectionError (2): Connection error. at "
        f"{url}: check model.base_url and that the server is running"
    )


def test_skipped_turns_are_named_only_when_nothing_else_is_there(tmp_path: Path) -> None:
    with TranscriptWriter(tmp_path / "transcript.jsonl") as writer:
        for conversation in ("a", "b"):
            writer.write(_failed(conversation, 2, "Skipped", "not asked: turn 1 failed", None))
    assert describe_failures(tmp_path) == (
        "all 2 calls failed; most common: Skipped (2): not asked: turn 1 failed at the offline "
        f"model: see the error of each record in the transcripts under {tmp_path}"
    )


def test_a_long_message_is_shortened_to_keep_one_line(tmp_path: Path) -> None:
    with TranscriptWriter(tmp_path / "transcript.jsonl") as writer:
        writer.write(_failed("a", 1, "BudgetError", "too long\n" * 40, None))
        writer.write(_failed("a", 2, "Skipped", "not asked: turn 1 failed", None))
        writer.write(_failed("a", 3, "Skipped", "not asked: turn 1 failed", None))
    message = ("too long " * 40)[:199].rstrip() + "…"
    assert describe_failures(tmp_path) == (
        f"all 3 calls failed; most common: BudgetError (1): {message} at the offline model: "
        f"see the error of each record in the transcripts under {tmp_path}"
    )


def test_a_run_dir_in_use_is_refused_and_left_alone(cli: Cli, fake_server) -> None:
    fake_server.latency_s = 1.5  # the first is still running when the second starts
    procs = {
        seed: subprocess.Popen(
            cli.args(*fake_model(fake_server), f"sampling.seed={seed}"),
            cwd=cli.tmp,
            env=cli_env(OPENAI_API_KEY=FAKE_KEY),
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
    assert outputs[loser][1].splitlines() == [
        f"runner: error: {cli.run_dir} is in use by another runner process (pid "
        f"{procs[winner].pid}): wait for it to finish, or choose another hydra.run.dir"
    ]
    rows = records(cli.run_dir / "transcript.jsonl")
    assert len(rows) == 5 and len({r["record_id"] for r in rows}) == 5
    assert fake_server.request_count == 5
    assert f"seed: {winner}\n" in (cli.run_dir / ".hydra" / "config.yaml").read_text()
    assert [f"sampling.seed={winner}"] == [
        line[2:]
        for line in (cli.run_dir / ".hydra" / "overrides.yaml").read_text().splitlines()
        if "seed" in line
    ]


def test_a_disk_that_fills_up_keeps_what_was_written_and_resume_finishes(cli: Cli) -> None:
    """A file-size limit makes the transcript's writes fail part-way, as a full disk does."""
    import resource
    import signal

    limit = 8000  # above .hydra/hydra.yaml (~6 kB), below the 10 records (~13 kB)

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    settings = ("questions=trivia_file", "cache.enabled=false", "concurrency=1")
    full = subprocess.run(
        cli.args(*settings),
        cwd=cli.tmp,
        env=cli_env(),
        capture_output=True,
        text=True,
        preexec_fn=small_files,
    )
    assert full.returncode == 2, full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"runner: error: cannot write {cli.run_dir / 'transcript.jsonl'} (")
    assert last.endswith(
        "then run the same command with resume=true; the records written so far are kept"
    )
    kept = (cli.run_dir / "transcript.jsonl").read_bytes()
    assert len(kept) == limit  # complete records, then a torn one
    complete = kept[: kept.rfind(b"\n") + 1].decode().splitlines()
    assert 1 <= len(complete) < TRIVIA_CALLS
    done = cli(*settings, "resume=true")
    assert done.returncode == 0, done.stderr
    rows = records(cli.run_dir / "transcript.jsonl")
    assert len(rows) == len({r["record_id"] for r in rows}) == TRIVIA_CALLS
    assert [json.loads(line) for line in complete] == rows[: len(complete)]


def run_here(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m runner`` run from ``cwd`` with only the arguments given."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_says_what_the_runner_does_and_where_the_presets_are(tmp_path: Path) -> None:
    done = run_here(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("runner: sweep models, system prompts and sampling settings")
    commands = text.index("== Commands ==")
    presets = text.index("== Presets ==")
    groups = text.index("== Config groups ==")
    config = text.index("== Config ==")
    assert commands < presets < groups < config
    for command in (
        "python -m runner -m system=helpful,concise",
        "python -m runner dry_run=true",
        "resume=true",
        "python -m runner init",
    ):
        assert command in text[commands:presets]
    assert f"packaged:  {CONF_DIR}\n" in text
    assert f"yours:     ./conf, searched first (none in {tmp_path}" in text
    assert "system: concise, expert, helpful, socratic\n" in text[groups:config]
    assert "model:\n  name: echo\n" in text[config:]

    (tmp_path / "conf" / "system").mkdir(parents=True)
    (tmp_path / "conf" / "system" / "pirate.yaml").write_text("name: pirate\nmessage: Arr.\n")
    mine = run_here(tmp_path, "--help").stdout
    assert f"yours:     {tmp_path / 'conf'} (searched before the packaged tree)\n" in mine
    assert "system: concise, expert, helpful, pirate, socratic\n" in mine


def write_conf(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "conf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_conf_in_the_working_directory_adds_presets_and_may_replace_config_yaml(
    cli: Cli,
) -> None:
    write_conf(cli.tmp, {"system/pirate.yaml": "name: pirate\nmessage: Arr, matey.\n"})
    done = cli("system=pirate")
    assert done.returncode == 0, done.stderr
    assert {r["system_message"] for r in records(cli.run_dir / "transcript.jsonl")} == {
        "Arr, matey."
    }
    write_conf(
        cli.tmp,
        {
            "config.yaml": (
                "defaults:\n  - runner\n  - _self_\n  - override system: pirate\nmax_history: 0\n"
            )
        },
    )
    shutil.rmtree(cli.run_dir)
    done = cli("--cfg", "job")
    assert done.returncode == 0, done.stderr
    assert "max_history: 0\n" in done.stdout and "name: pirate\n" in done.stdout


def test_init_writes_a_starter_tree_then_refuses_to_overwrite_it(cli: Cli) -> None:
    done = run_here(cli.tmp, "init")
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(cli.tmp).as_posix() for p in cli.tmp.rglob("*") if p.is_file())
    assert written == [
        "conf/config.yaml",
        "conf/model/local.yaml",
        "conf/questions/data/starter.jsonl",
        "conf/questions/starter.yaml",
        "conf/system/tutor.yaml",
    ]
    lines = done.stdout.splitlines()
    assert lines[0] == f"wrote {cli.tmp / 'conf'}:"
    assert all(any(line.strip().startswith(name) for line in lines) for name in written)
    assert lines[-1] == "next: python -m runner system=tutor questions=starter"

    before = {p: p.read_bytes() for p in (cli.tmp / "conf").rglob("*") if p.is_file()}
    again = run_here(cli.tmp, "init")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.splitlines() == [
        f"runner: error: {cli.tmp / 'conf'} already exists: edit the presets there, or run "
        "`python -m runner init` in a new directory"
    ]
    assert {p: p.read_bytes() for p in (cli.tmp / "conf").rglob("*") if p.is_file()} == before

    # the next command it printed works, and so does the model preset's composition
    done = cli(*lines[-1].split()[4:])
    assert done.returncode == 0, done.stderr
    rows = records(cli.run_dir / "transcript.jsonl")
    assert {(r["system"], r["question_set"]) for r in rows} == {("tutor", "starter")}
    assert len(rows) == 4
    local = run_here(cli.tmp, "model=local", "--cfg", "job")
    assert local.returncode == 0 and "base_url: http://localhost:8000/v1" in local.stdout


def test_log_lines_do_not_run_into_the_progress_bar(cli: Cli) -> None:
    code, text = read_pty(cli.args("-m", "system=helpful,concise,expert"), cli.tmp)
    assert code == 0, text
    assert "errors=0" in text  # the bar was drawn
    logged = [line.rstrip("\r") for line in text.split("\n") if "][INFO] - " in line]
    records_lines = [line for line in logged if "records" in line and "transcript.jsonl" in line]
    assert len(records_lines) == 3  # one per job, logged while the bar was on the terminal
    for line in logged:
        # what the terminal shows of the line: the text after its last carriage return
        assert line.rsplit("\r", 1)[-1].startswith("["), repr(line)
