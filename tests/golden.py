"""Fixed sweeps whose transcripts must not change: on the offline echo model and against the
fake server, through the command line as a user runs it.

Each scenario runs ``python -m runner -m ...`` into a fresh directory and reduces what it
wrote (every transcript, ``judgments.jsonl`` and ``summary.csv``) to text that leaves out only
what differs from run to run: times (``created_at``, ``latency_s``, ``ttft_s``, latency
columns), the fake server's ids (numbered by arrival, which concurrency orders) and its port,
and the run's own directory. Records are sorted by job, conversation, sample, turn, step and
choice (concurrency orders the lines of a transcript).

``tests/test_golden.py`` compares each scenario with ``tests/data/golden/<name>.jsonl``;
``python tests/golden.py --write [NAME ...]`` writes them again (only when a change of the
transcripts is meant).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GOLDEN_DIR = HERE / "data" / "golden"
KEY = "test-fixture-key-0123456789abcdefSECRET"
# The fake server's ids count its requests (and files, batches, conversations) in the order
# they arrive; the echo model's are digests of the request, the same every run.
_FAKE_ID = re.compile(
    r"\b(?:chatcmpl-fake-|resp_fake_|msg_fake_|fc_fake_|call_fake_|ws_fake_|fs_fake_|ci_fake_"
    r"|cntr_fake_|conv_fake_|fco_fake_|batch_req_fake|batch_fake|file-fake)[A-Za-z0-9_]*"
)
_PORT = re.compile(r"127\.0\.0\.1(?:\\\\)?:\d+")  # Hydra escapes the colon in overrides
_TIMES = ("created_at", "latency_s", "ttft_s")
_SUMMARY_TIMES = ("latency_p50_s", "latency_p95_s")
_RECORD_ORDER = ("job", "conversation_id", "sample", "turn", "step", "choice")


@dataclass(frozen=True)
class Scenario:
    """One sweep: its overrides, whether it talks to the fake server, and a set-up of the
    server (``server`` is a ``FakeOpenAIServer``) before it runs."""

    name: str
    overrides: tuple[str, ...]
    remote: bool = False
    setup: Callable[[Any], None] | None = None
    twice: bool = False  # run it again into the same cache: the second run is cache hits


def _no_usage(server: Any) -> None:
    server.send_usage = False


def _out_of_quota(server: Any) -> None:
    server.enqueue(*["quota"] * 200)


FAKE = ("model=gpt-4.1-mini",)
SCENARIOS = [
    Scenario(
        "echo_basic",
        (
            "questions=capitals,math_chat",
            "system=helpful,concise",
            "sampling.max_tokens=null,5",
            "repeat=2",
        ),
    ),
    Scenario(
        "echo_tools",
        ("model.api=chat,responses", "tools=weather,calculator", "questions=weather_tools"),
    ),
    Scenario(
        "echo_state",
        (
            "model.api=responses",
            "conversation_state=client,previous_response_id,conversation",
            "questions=math_chat",
            "max_history=1",
        ),
    ),
    Scenario(
        "echo_json_n",
        (
            "questions=capitals_json",
            "response_format=capital_json,json_object",
            "sampling.n=1,3",
            "model.api=chat",
        ),
    ),
    Scenario(
        "echo_builtin",
        ("model.api=responses", "tools=web,files,code", "questions=capitals"),
    ),
    Scenario(
        "echo_judge",
        (
            "questions.scorer.kind=judge",
            "model@judge.model=echo",
            "judge=default,strict",
            "questions=capitals,math_chat",
        ),
    ),
    Scenario(
        "echo_stop_failed",
        (
            "sampling.stop=[Canada,times]",
            "questions=capitals,math_chat",
            "failed_score=0,null",
            "sampling.max_tokens=1000",
            "token_budget=1031,1034",
        ),
    ),
    Scenario("echo_cache", ("questions=math_chat", "system=helpful,expert"), twice=True),
    Scenario(
        "fake_chat",
        (*FAKE, "questions=capitals,math_chat", "sampling.n=null,2", "sampling.temperature=1"),
        remote=True,
    ),
    Scenario(
        "fake_tools",
        (*FAKE, "model.api=chat,responses", "tools=weather,calculator", "questions=weather_tools"),
        remote=True,
    ),
    Scenario(
        "fake_state",
        (
            *FAKE,
            "model.api=responses",
            "conversation_state=previous_response_id,conversation",
            "questions=math_chat",
        ),
        remote=True,
    ),
    Scenario(
        "fake_builtin_json",
        (
            "model=gpt-5.4",
            "model.api=responses",
            "tools=web,files,code",
            "questions=capitals_json",
            "response_format=capital_json",
        ),
        remote=True,
    ),
    Scenario(
        "fake_no_usage",
        (*FAKE, "questions=math_chat,capitals", "model.api=chat,responses"),
        remote=True,
        setup=_no_usage,
    ),
    Scenario(
        "fake_batch",
        (
            *FAKE,
            "batch=true",
            "batch_poll_s=0.01",
            "questions=math_chat",
            "tools=none,calculator",
        ),
        remote=True,
    ),
    Scenario(
        "fake_all_failed",
        (*FAKE, "questions=math_chat", "sampling.seed=1,2"),
        remote=True,
        setup=_out_of_quota,
    ),
    Scenario(
        "fake_judge",
        (
            *FAKE,
            "questions.scorer.kind=judge",
            "model@judge.model=gpt-4.1-mini",
            "questions=capitals",
            "judge=default,strict",
        ),
        remote=True,
    ),
]
BY_NAME = {s.name: s for s in SCENARIOS}


def run(scenario: Scenario, workdir: Path, server: Any = None) -> str:
    """Run a scenario's sweep in ``workdir`` and return what it wrote, reduced to text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HYDRA_"))}
    env["PYTHONUNBUFFERED"] = "1"
    overrides = list(scenario.overrides)
    if scenario.remote:
        assert server is not None, f"{scenario.name} needs the fake server"
        server.reset()
        if scenario.setup is not None:
            scenario.setup(server)
        env["OPENAI_API_KEY"] = KEY
        overrides.append(f"model.base_url={server.base_url}")
        if any(o.startswith("model@judge.model=gpt") for o in overrides):
            overrides.append(f"judge.model.base_url={server.base_url}")
    sweep = workdir / "sweep"
    cache = ["cache.enabled=true", f"cache.dir={workdir / 'cache'}"]
    if not scenario.twice:
        cache = ["cache.enabled=false"]
    texts = []
    for attempt in range(2 if scenario.twice else 1):
        target = sweep if attempt == 0 else workdir / "again"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "runner",
                "-m",
                *overrides,
                *cache,
                f"hydra.sweep.dir={target}",
                "progress=false",
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode not in (0, 3):  # 3: every call failed
            raise RuntimeError(
                f"{scenario.name}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        texts.append(reduce(target))
    return "".join(texts)


def reduce(sweep: Path) -> str:
    """What a sweep wrote, as text that is the same on every run of the same sweep."""
    lines: list[str] = []
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    for job in jobs:
        records = _read(job / "transcript.jsonl")
        records.sort(key=lambda r: [_order(r.get(k)) for k in _RECORD_ORDER])
        for record in records:
            for key in _TIMES:
                record.pop(key, None)
            lines.append(_text({"file": f"{job.name}/transcript.jsonl", **record}))
        judgments = _read(job / "judgments.jsonl")
        judgments.sort(key=lambda j: (j.get("record_id"), j.get("judge_key")))
        for judgment in judgments:
            for key in _TIMES:
                judgment.pop(key, None)
            lines.append(_text({"file": f"{job.name}/judgments.jsonl", **judgment}))
    summary = sweep / "summary.csv"
    if summary.exists():
        rows = list(csv.DictReader(io.StringIO(summary.read_text(encoding="utf-8"))))
        for row in rows:
            for key in _SUMMARY_TIMES:
                row.pop(key, None)
            row["job_dir"] = Path(row["job_dir"]).name
            lines.append(_text({"file": "summary.csv", **row}))
    return "".join(lines)


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int) else (1, str(value))


def _text(data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False, sort_keys=False)
    return _PORT.sub("127.0.0.1:<port>", _FAKE_ID.sub("<id>", text)) + "\n"


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.jsonl"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the golden transcripts again.")
    parser.add_argument("--write", action="store_true", help="write tests/data/golden/*.jsonl")
    parser.add_argument("names", nargs="*", help="scenarios (default: all)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from fake_openai import FakeOpenAIServer

    names = args.names or [s.name for s in SCENARIOS]
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    with FakeOpenAIServer() as server:
        for name in names:
            with tempfile.TemporaryDirectory() as tmp:
                text = run(BY_NAME[name], Path(tmp), server)
            lines = text.count("\n")
            if args.write:
                golden_path(name).write_text(text, encoding="utf-8")
                print(f"{name}: wrote {lines} lines")
            else:
                same = golden_path(name).read_text(encoding="utf-8") == text
                print(f"{name}: {lines} lines, {'same' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
