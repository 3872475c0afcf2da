"""``python -m runner judge DIR [overrides...] [--force]``: grade a finished run or sweep again.

The judge settings are composed from the same config tree as a run (``judge=strict``,
``judge.rubric=...``, ``model@judge.model=gpt-6-sol``, and the run-wide ``concurrency``,
``timeout_s``, ``retry.*``, ``cache.*``, ``progress``). Every transcript under DIR is read,
each final answer (the last call of a turn, without an error) that this judge has not judged
yet is judged, and each verdict is appended to the job's ``judgments.jsonl`` as its call
completes, so a killed re-judge resumes where it stopped; ``--force`` judges every answer
again. The answering model is never called.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from runner.base.errors import ConfigError, RunnerError
from runner.base.judgment import JUDGMENTS_NAME
from runner.core.files import config_trees
from runner.core.rejudge import JobRejudged, format_rejudged, rejudge_run
from runner.core.validation import validate

USAGE = (
    "python -m runner judge DIR [judge=NAME] [judge.KEY=VALUE ...] "
    "[model@judge.model=PRESET] [--force]"
)
HELP = """Grade the answers of a finished run or sweep again, without the answering model.

Judge settings come from the config tree: judge=strict, judge.rubric='...',
judge.rubric_path=FILE, judge.scale=1-5, judge.threshold=4, model@judge.model=gpt-6-sol
(echo: offline), and concurrency, timeout_s, retry.*, cache.*, progress. Answers this
judge (same rubric, scale, threshold and model) has judged already are kept; --force judges
them again. Verdicts go to judgments.jsonl beside each transcript. --cfg job prints the
judge settings and calls nothing. Exit status: 0, 2 for bad input, 3 if every judge call
failed."""
EXIT_OK, EXIT_USAGE, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130
# What a re-judge may set: the judge, and how its calls go (never what the answers were).
_RUN_KEYS = ("concurrency", "timeout_s", "retry", "cache", "progress")
_KEYS = ("judge", "model@judge.model", *_RUN_KEYS)


def main(argv: Sequence[str]) -> int:
    """The ``judge`` subcommand; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    if set(argv) & {"-h", "--help"}:
        print(f"usage: {USAGE}\n\n{HELP}", flush=True)
        return EXIT_OK
    try:
        path, overrides, force, show = _parse(argv)
        if show:
            from omegaconf import OmegaConf

            from runner.cli.experiment import compose

            print(OmegaConf.to_yaml(compose(overrides).judge), end="", flush=True)
            return EXIT_OK
        rows = rejudge(path, overrides, force)
    except RunnerError as exc:
        print(f"runner: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "runner: interrupted: the judgments written so far are kept; run the same command "
            "to finish",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_INTERRUPTED
    print(format_rejudged(path, rows), flush=True)
    calls, failed = sum(r.judged for r in rows), sum(r.errors for r in rows)
    if calls and failed == calls:
        kinds: Counter[str] = sum((r.error_types for r in rows), Counter())
        kind, count = kinds.most_common(1)[0]
        print(
            f"runner: error: all {calls} judge calls failed; most common: {kind} ({count}): see "
            f"the error of each judgment in the {JUDGMENTS_NAME} files under {path}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_ALL_FAILED
    return EXIT_OK


def _parse(argv: Sequence[str]) -> tuple[Path, list[str], bool, bool]:
    """DIR, the overrides, ``--force`` and ``--cfg job`` (print the judge settings)."""
    args = list(argv)
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    show = False
    if "--cfg" in args:
        at = args.index("--cfg")
        if args[at + 1 : at + 2] != ["job"]:
            raise ConfigError(f"judge takes --cfg job only: {USAGE}")
        show = True
        del args[at : at + 2]
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise ConfigError(f"judge does not take {flags[0]}: {USAGE}")
    if not args or "=" in args[0]:
        raise ConfigError(f"judge needs the run or sweep dir to judge first: {USAGE}")
    path, overrides = Path(args[0]), args[1:]
    for text in overrides:
        key = text.lstrip("+~").partition("=")[0]
        if key not in _KEYS and key.partition(".")[0] not in _KEYS:
            raise ConfigError(
                f"judge takes the judge's settings, not {text}: the answers come from the "
                "transcripts; set judge=..., judge.KEY=..., model@judge.model=..., or "
                + ", ".join(f"{k}.*" if k in ("retry", "cache") else k for k in _RUN_KEYS)
            )
    return path, overrides, force, show


def rejudge(path: Path, overrides: Sequence[str] = (), force: bool = False) -> list[JobRejudged]:
    """Judge the final answers of every transcript under ``path`` that the judge composed from
    ``overrides`` has not judged yet (all of them with ``force``); one row per job dir.

    Raises ``RunnerError`` for bad settings, a missing judge API key, a path without
    transcripts, a corrupt transcript or a job dir another process is writing.
    """
    from runner.cli.experiment import compose

    return rejudge_run(path, validate(compose(list(overrides))), force, config_trees())
