"""Shared helpers of the benchmark scripts: the fake server process, question files, the CLI.

Each benchmark runs the fake OpenAI-compatible server (``tests/fake_openai.py``) as a
separate process on 127.0.0.1 and stops it when done; nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import platform
import selectors
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAKE_SERVER = REPO / "tests" / "fake_openai.py"
API_KEY = "bench-key"
MODEL = "gpt-4.1-mini"


def setup_env() -> None:
    """Point tiktoken at the shared offline encodings and give the preset its API key."""
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        shared = (REPO.parent / "shared" / "tiktoken").resolve()
        if shared.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(shared)
    os.environ["OPENAI_API_KEY"] = API_KEY
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )


@dataclass
class FakeServer:
    base_url: str
    process: subprocess.Popen[str]


@contextmanager
def fake_server(
    latency_s: float = 0.0, rate_limit_per_s: float | None = None, timeout_s: float = 20.0
) -> Iterator[FakeServer]:
    """Start ``tests/fake_openai.py`` in a process of its own; SIGTERM it on the way out."""
    cmd = [sys.executable, str(FAKE_SERVER), "--port", "0", "--latency-s", str(latency_s)]
    if rate_limit_per_s is not None:
        cmd += ["--rate-limit-per-s", str(rate_limit_per_s)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO
    )
    try:
        url = _wait_ready(proc, timeout_s)
        yield FakeServer(url, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.1):
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                return line.split()[1]
    raise RuntimeError(f"fake server did not start (exit status {proc.poll()})")


def write_questions(path: Path, n: int, tag: str = "q") -> Path:
    """A JSONL file of ``n`` distinct single questions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            item = {"id": f"{tag}{i}", "question": f"What is item {i} of set {tag}?"}
            fh.write(json.dumps(item) + "\n")
    return path


def question_texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh if line.strip()]


def model_overrides(base_url: str, questions: Path) -> list[str]:
    return [
        f"model={MODEL}",
        f"model.base_url={base_url}",
        "questions=trivia_file",
        f"questions.path={questions}",
    ]


@dataclass
class CliRun:
    wall_s: float
    returncode: int
    max_rss_kib: int  # the child's own peak resident set size (Linux: KiB)
    stderr: str


def run_cli(args: Sequence[str], timeout_s: float = 300.0) -> CliRun:
    """``python -m runner <args>`` from the repo root: wall time and the child's peak RSS.

    The child is reaped with ``os.wait4``, whose rusage is that one child's (the same
    figure ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` gives when it is the only child).
    Raises when it exits non-zero or runs past ``timeout_s`` (then it is killed).
    """
    import tempfile
    import threading

    cmd = [sys.executable, "-m", "runner", *args]
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, text=True)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        sys.stderr.write(stderr[-4000:])
        raise RuntimeError(f"python -m runner exited {proc.returncode}")
    return CliRun(wall, proc.returncode, usage.ru_maxrss, stderr)


def load(path: Path) -> Any:
    from runner import load_results

    return load_results(path)


def call_phase(df: Any) -> tuple[float, float]:
    """Seconds from the first request start to the last record, from the records alone.

    A record's ``created_at`` is when it was written and ``latency_s`` the last attempt's
    duration, so ``created_at - latency_s`` is when that attempt started. Returns
    ``(call_phase_s, first_start_epoch)``.
    """
    import pandas as pd

    created = pd.to_datetime(df["created_at"], utc=True)
    ends = _epoch_seconds(created)
    latency = df["latency_s"].fillna(0.0).astype(float)
    starts = ends - latency
    first = float(starts.min())
    return float(ends.max()) - first, first


def record_spans(df: Any) -> tuple[list[float], list[float]]:
    """Each record's end (``created_at``) and start (``created_at - latency_s``), epoch s."""
    import pandas as pd

    ends = _epoch_seconds(pd.to_datetime(df["created_at"], utc=True))
    starts = ends - df["latency_s"].fillna(0.0).astype(float)
    return list(ends), list(starts)


def _epoch_seconds(created: Any) -> Any:
    import pandas as pd

    delta = created - pd.Timestamp("1970-01-01", tz="UTC")
    return delta.dt.total_seconds()


async def plain_calls(
    base_url: str, system: str, questions: Sequence[str], concurrency: int
) -> list[tuple[float, float]]:
    """The reference client: ``AsyncOpenAI`` and an ``asyncio.Semaphore``, nothing else.

    Streams each question with ``stream_options.include_usage``, reads every chunk and
    keeps the answer; returns each call's (start, end) on ``time.perf_counter``'s clock.
    Raises if a call fails or comes back without an answer or usage.
    """
    import asyncio

    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=API_KEY, base_url=base_url, max_retries=0)
    slots = asyncio.Semaphore(concurrency)

    async def one(question: str) -> tuple[float, float]:
        async with slots:
            started = time.perf_counter()
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                ],
                stream=True,
                stream_options={"include_usage": True},
            )
            parts: list[str] = []
            usage = None
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices[:1]:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
            if not "".join(parts) or usage is None:
                raise RuntimeError("plain loop: a call came back without an answer or usage")
            return started, time.perf_counter()

    try:
        return list(await asyncio.gather(*(one(q) for q in questions)))
    finally:
        await client.close()


def system_message() -> str:
    """The default system message, as the runner sends it."""
    from runner.cli.experiment import compose

    return str(compose([f"model={MODEL}"]).system.message)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"
