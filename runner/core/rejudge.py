"""Grading a finished run or sweep again with a judge, without the answering model: every final
answer under a directory that this judge has not judged yet is judged, and each verdict is
appended to the job's ``judgments.jsonl`` as its call completes (a killed re-judge resumes
where it stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.analysis.judgments import latest_judgments
from runner.analysis.summary import SUMMARY_NAME, summarize, write_summary
from runner.base.errors import ResultsError, RunnerError
from runner.base.judgment import JUDGMENTS_NAME
from runner.base.schema import RunConfig
from runner.base.transcript import TRANSCRIPT_NAME, TranscriptWriter, find_transcripts, read_records
from runner.core.judge import JudgePlan, is_final_answer, judge_answer, plan_judge
from runner.core.lock import lock_transcript
from runner.core.progress import Progress
from runner.wire.cache import ResponseCache
from runner.wire.gateway import Gateway

log = logging.getLogger("runner")


@dataclass
class JobRejudged:
    """What a re-judge did in one job dir."""

    job_dir: Path
    answers: int = 0  # final answers in the transcript
    judged: int = 0  # judge calls made now
    kept: int = 0  # answers this judge had judged already
    errors: int = 0  # judge calls made now that gave no verdict
    cost_usd: float | None = None  # what the calls made now cost
    mean_score: float | None = None  # this judge's mean score over the job's answers
    error_types: Counter[str] = field(default_factory=Counter)


def rejudge_run(
    path: Path, run: RunConfig, force: bool = False, trees: Sequence[Path] | None = None
) -> list[JobRejudged]:
    """Judge the final answers of every transcript under ``path`` with ``run.judge`` (its
    rubric file found in ``trees``) that it has not judged yet (all of them with ``force``);
    one row per job dir, and the run's or sweep's ``summary.csv`` written again.

    Raises ``RunnerError`` for a missing judge API key, a path without transcripts, a
    corrupt transcript or a job dir another process is writing.
    """
    transcripts = _transcripts(path)
    plan = plan_judge(run.judge, trees=trees)
    rows = asyncio.run(_rejudge(run, plan, transcripts, force))
    _refresh_summary(path)
    return rows


def _refresh_summary(path: Path) -> None:
    """Rewrite the run's or sweep's ``summary.csv`` (its scores and judge costs), if it has one."""
    if (path / SUMMARY_NAME).is_file():
        write_summary(path, summarize(path))


def _transcripts(path: Path) -> list[Path]:
    if not path.exists():
        raise ResultsError(f"{path}: no such directory: pass a run dir or a sweep dir to judge")
    found = find_transcripts(path)
    if not found:
        raise ResultsError(
            f"{path}: no {TRANSCRIPT_NAME} in this directory or below it: pass a run dir or a "
            "sweep dir"
        )
    return found


async def _rejudge(
    run: RunConfig, plan: JudgePlan, transcripts: list[Path], force: bool
) -> list[JobRejudged]:

    rows = [JobRejudged(t.parent) for t in transcripts]
    with contextlib.ExitStack() as stack:
        todo: list[tuple[int, dict[str, Any]]] = []
        for i, transcript in enumerate(transcripts):
            stack.enter_context(lock_transcript(transcript))  # not while a run writes there
            todo += [(i, r) for r in _unjudged(transcript, plan, rows[i], force)]
        cache = None
        if run.cache.enabled:
            cache = ResponseCache(Path(run.cache.dir).expanduser().resolve())
            stack.callback(cache.close)
        gateway = Gateway(run.concurrency, cache)
        progress = Progress(run.progress)
        stack.callback(progress.close)
        progress.add_calls(len(todo))
        writers = [_LazyWriter(r.job_dir / JUDGMENTS_NAME) for r in rows]
        for writer in writers:
            stack.callback(writer.close)
        pending: Iterator[tuple[int, dict[str, Any]]] = iter(todo)
        costs: list[list[float]] = [[] for _ in rows]

        async def worker() -> None:
            for i, record in pending:
                judgment = await judge_answer(plan, gateway, record, run.retry, run.timeout_s)
                data = judgment.to_dict()
                writers[i].write(data)
                row = rows[i]
                row.judged += 1
                if judgment.error is not None:
                    row.errors += 1
                    row.error_types[judgment.error.type] += 1
                if judgment.cost_usd is not None:
                    costs[i].append(judgment.cost_usd)
                progress.call_done([data])

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(len(todo), 2 * run.concurrency)):
                    group.create_task(worker())
        except* JudgmentWriteError as failed:
            raise failed.exceptions[0] from None
        finally:
            await gateway.aclose()
        for row, spent in zip(rows, costs, strict=True):
            row.cost_usd = round(sum(spent), 8) if spent else None
            scores = [
                float(j["score"])
                for j in latest_judgments(row.job_dir, plan.key).values()
                if isinstance(j.get("score"), int | float)
            ]
            row.mean_score = round(statistics.fmean(scores), 4) if scores else None
    return rows


def _unjudged(
    transcript: Path, plan: JudgePlan, row: JobRejudged, force: bool
) -> list[dict[str, Any]]:
    """The final answers of a transcript this judge has yet to judge (all with ``force``)."""
    try:
        finals = [r for r in read_records(transcript) if is_final_answer(r)]
    except ValueError as exc:
        raise ResultsError(f"{exc}; fix or remove that line") from None
    row.answers = len(finals)
    done = set() if force else _judged_ok(transcript.parent, plan.key)
    todo = [r for r in finals if r["record_id"] not in done]
    row.kept = row.answers - len(todo)
    return todo


def _judged_ok(job_dir: Path, key: str) -> set[str]:
    return {rid for rid, j in latest_judgments(job_dir, key).items() if j.get("error") is None}


class JudgmentWriteError(RunnerError):
    """``judgments.jsonl`` cannot be written (a full disk): the verdicts so far stay."""


class _LazyWriter:
    """``judgments.jsonl`` of one job, opened with its first line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: TranscriptWriter | None = None

    def write(self, data: dict[str, Any]) -> None:
        try:
            if self._writer is None:
                self._writer = TranscriptWriter(self.path)
            self._writer.write(data)
        except OSError as exc:
            raise JudgmentWriteError(
                f"cannot write {self.path} ({exc.strerror or exc}): free some space (or fix the "
                "file system), then run the same command; the judgments written so far are kept"
            ) from None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def format_rejudged(path: Path, rows: list[JobRejudged]) -> str:
    """The per-job table a re-judge prints."""
    headers = ["job", "answers", "judged", "kept", "errors", "score", "judge $"]
    body = []
    for row in rows:
        try:
            name = str(row.job_dir.relative_to(path)) if path.is_dir() else str(row.job_dir)
        except ValueError:
            name = str(row.job_dir)
        body.append(
            [
                name,
                str(row.answers),
                str(row.judged),
                str(row.kept),
                str(row.errors),
                "-" if row.mean_score is None else f"{row.mean_score:.3f}",
                "-" if row.cost_usd is None else f"{row.cost_usd:.6f}",
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in body
    ]
    return "\n".join(lines)
