"""Shared fixtures: a fake OpenAI server, the CLI in a subprocess, and the skip of tests that
need tiktoken's exact encodings (``@pytest.mark.needs_encodings``) when they are not at hand."""

from __future__ import annotations

import functools
import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent
FAKE_KEY = "test-fixture-key-0123456789abcdefSECRET"
ENCODINGS = ("o200k_base", "cl100k_base")  # every preset counts with one of these


@functools.cache
def missing_encodings() -> tuple[str, ...]:
    """The encodings tiktoken cannot load here (no files in its cache and no download)."""
    import tiktoken

    missing = []
    for name in ENCODINGS:
        try:
            tiktoken.get_encoding(name)
        except Exception:  # a download that fails offline raises requests' errors
            missing.append(name)
    return tuple(missing)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_encodings") is None:
        return
    missing = missing_encodings()
    if missing:
        where = os.environ.get("TIKTOKEN_CACHE_DIR")
        pytest.skip(
            f"needs tiktoken's {' and '.join(missing)} encoding files, for exact token counts: "
            "set TIKTOKEN_CACHE_DIR to a folder holding them"
            + (f" ({where} does not)" if where else "")
            + " or allow tiktoken to download them"
        )


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_server(_server: FakeOpenAIServer) -> FakeOpenAIServer:
    """A fake OpenAI-compatible server on 127.0.0.1, reset to defaults for each test."""
    _server.reset()
    return _server


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HYDRA_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Cli:
    """Runs ``python -m runner`` as a user would, with all output under ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.run_dir = tmp_path / "run"
        self.sweep_dir = tmp_path / "sweep"
        self.cache_dir = tmp_path / "cache"

    def args(self, *overrides: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "runner",
            *overrides,
            f"hydra.run.dir={self.run_dir}",
            f"hydra.sweep.dir={self.sweep_dir}",
            f"cache.dir={self.cache_dir}",
        ]

    def __call__(
        self, *overrides: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.args(*overrides),
            cwd=self.tmp,
            env=env or cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def read_pty(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``args`` with stdout and stderr on a terminal; its exit status and all it wrote."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env or cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    proc.wait(timeout=60)
    os.close(primary)
    return proc.returncode, output.decode(errors="replace")


FAST_RETRY = ["retry.max_attempts=3", "retry.initial_backoff_s=0.01", "retry.max_backoff_s=0.02"]


def records(directory: Path, name: str = "transcript.jsonl") -> list[dict[str, Any]]:
    """The records of a run dir's transcript (or another JSONL file in it), in file order."""
    path = directory / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class Job:
    """Runs one job in-process into ``tmp_path/run``, the cache in ``tmp_path/cache``; by
    default against the fake server with an OpenAI preset."""

    def __init__(self, tmp_path: Path, server: FakeOpenAIServer) -> None:
        self.dir = tmp_path / "run"
        self.cache = tmp_path / "cache"
        self.server = server

    def __call__(self, *overrides: str, remote: bool = True) -> list[dict[str, Any]]:
        from runner.cli.experiment import run_job

        model = ["model=gpt-4.1-mini", f"model.base_url={self.server.base_url}"] if remote else []
        run_job([*model, *FAST_RETRY, f"cache.dir={self.cache}", *overrides], self.dir)
        return records(self.dir)


@pytest.fixture
def job(tmp_path: Path, fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Job:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return Job(tmp_path, fake_server)


def fake_model(server: FakeOpenAIServer, *extra: str) -> list[str]:
    """Overrides that point an OpenAI preset at the fake server."""
    return ["model=gpt-4.1-mini", f"model.base_url={server.base_url}", *extra]
