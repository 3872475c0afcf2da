"""The per-job summary of a run or sweep: printed at the end and written as ``summary.csv``.

Built from the transcripts on disk, not from memory, so it is right whichever launcher ran
the jobs and in whichever processes. No pandas: the CLI stays quick to start.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.config import experiment_overrides
from runner.judgments import judge_costs, judged_scores
from runner.transcript import TRANSCRIPT_NAME, read_records

SUMMARY_NAME = "summary.csv"
# Errors whose fix is on the user's side of the wire, with that fix.
_FIXES = {
    "ConnectionError": "check model.base_url and that the server is running",
    "Timeout": "check model.base_url and that the server is running (or raise timeout_s)",
    "AuthenticationError": "check the API key in the environment variable the model preset names",
    "PermissionDeniedError": "check that the API key may use this model",
    "NotFoundError": "check model.name and model.base_url",
}


@dataclass
class JobSummary:
    """Totals of one job's transcript."""

    job_dir: str
    job: int | None
    swept: dict[str, Any] = field(default_factory=dict)
    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    mean_score: float | None = None
    judge_cost_usd: float | None = None  # what the judge's calls cost (judgments.jsonl)


def find_transcripts(path: Path) -> list[Path]:
    """Transcripts under a run or sweep dir, jobs in natural order (2 before 10)."""
    if path.is_file():
        return [path]
    found = list(path.rglob(TRANSCRIPT_NAME))
    return sorted(
        found,
        key=lambda p: [
            int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p.relative_to(path)))
        ],
    )


def job_overrides(job_dir: Path, first_record: dict[str, Any] | None) -> list[str]:
    """The job's Hydra overrides: from ``.hydra/overrides.yaml``, else from its records."""
    saved = job_dir / ".hydra" / "overrides.yaml"
    if saved.exists():
        return experiment_overrides([str(o) for o in yaml.safe_load(saved.read_text()) or []])
    return list(first_record.get("overrides") or []) if first_record else []


def parse_override(text: str) -> tuple[str, Any] | None:
    """``key=value`` as (key, typed value); None for deletions and Hydra's own keys."""
    if text.startswith("~") or "=" not in text:
        return None
    key, _, value = text.lstrip("+").partition("=")
    if key.startswith("hydra.") or key.startswith("hydra/"):
        return None
    try:
        return key, yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        return key, value


def summarize(path: Path) -> list[JobSummary]:
    """One summary per transcript under ``path``; ``swept`` holds the keys that differ."""
    rows: list[JobSummary] = []
    overrides: list[dict[str, Any]] = []
    for transcript in find_transcripts(path):
        records = list(read_records(transcript))
        first = records[0] if records else None
        pairs = [parse_override(o) for o in job_overrides(transcript.parent, first)]
        overrides.append(dict(p for p in pairs if p is not None))
        rows.append(_summarize_job(transcript.parent, records))
    varying = _varying_keys(overrides)
    for row, job_overrides_ in zip(rows, overrides, strict=True):
        row.swept = {k: job_overrides_.get(k) for k in varying}
    return rows


def _summarize_job(job_dir: Path, records: list[dict[str, Any]]) -> JobSummary:
    row = JobSummary(job_dir=str(job_dir), job=records[0].get("job") if records else None)
    costs, latencies, scores = [], [], []
    judged = judged_scores(job_dir)  # the judge's score, for records without one of their own
    for r in records:
        row.calls += 1
        row.errors += 1 if r.get("error") else 0
        usage = r.get("usage") or {}
        row.prompt_tokens += usage.get("prompt_tokens") or 0
        row.completion_tokens += usage.get("completion_tokens") or 0
        if r.get("cost_usd") is not None:
            costs.append(r["cost_usd"])
        if r.get("latency_s") is not None and not r.get("error") and not r.get("cache_hit"):
            latencies.append(r["latency_s"])
        score = r.get("score")
        if score is None:
            score = judged.get(str(r.get("record_id")))
        if score is not None:
            scores.append(score)
    row.judge_cost_usd = judge_costs(job_dir)
    row.cost_usd = round(sum(costs), 8) if costs else None
    if latencies:
        row.latency_p50_s = round(statistics.median(latencies), 4)
        row.latency_p95_s = round(_percentile(latencies, 95), 4)
    row.mean_score = round(statistics.fmean(scores), 4) if scores else None
    return row


def _percentile(values: list[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _varying_keys(overrides: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for job in overrides:
        keys += [k for k in job if k not in keys]
    if len(overrides) <= 1:
        return keys
    return [k for k in keys if len({repr(job.get(k)) for job in overrides}) > 1]


@dataclass
class Outcome:
    """What a finished run or sweep came to, for the CLI's exit status."""

    calls: int
    failed: int
    failure: str | None = None  # one line, when every call failed

    @property
    def all_failed(self) -> bool:
        return self.calls > 0 and self.failed == self.calls


def outcome(path: Path, rows: list[JobSummary]) -> Outcome:
    """Totals of a run or sweep from its summary; says why when every call failed."""
    calls, failed = sum(r.calls for r in rows), sum(r.errors for r in rows)
    result = Outcome(calls, failed)
    if result.all_failed:
        result.failure = describe_failures(path)
    return result


def describe_failures(path: Path) -> str:
    """One line for a run or sweep in which every call failed: how many, the most common error
    (type, count, message) and the base URL those calls went to, with the fix."""
    total = 0
    types: Counter[str] = Counter()
    messages: defaultdict[str, Counter[str]] = defaultdict(Counter)
    urls: defaultdict[str, Counter[str | None]] = defaultdict(Counter)
    for transcript in find_transcripts(path):
        for record in read_records(transcript):
            error = record.get("error")
            if not error:
                continue
            total += 1
            kind = str(error.get("type") or "error")
            types[kind] += 1
            messages[kind][" ".join(str(error.get("message") or "").split())] += 1
            urls[kind][record.get("base_url")] += 1
    if not types:
        return "no call failed"
    # later turns of a failed conversation are never sent: they say nothing about the cause
    causes = [k for k in types if k != "Skipped"] or list(types)
    kind = max(causes, key=types.__getitem__)
    message = _shorten(messages[kind].most_common(1)[0][0])
    url = urls[kind].most_common(1)[0][0]
    where = f"at {url}" if url else "at the offline model"
    fix = _FIXES.get(kind, f"see the error of each record in the transcripts under {path}")
    return (
        f"all {total} calls failed; most common: {kind} ({types[kind]}): {message} {where}: {fix}"
    )


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def write_summary(path: Path, rows: list[JobSummary]) -> Path:
    """Write ``summary.csv`` into the run or sweep dir: one row per job, swept keys first."""
    out = path / SUMMARY_NAME
    swept = list(rows[0].swept) if rows else []
    columns = (
        ["job", *swept, *[k for k in asdict(rows[0]) if k not in ("job", "swept")]]
        if rows
        else ["job"]
    )
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            data = asdict(row)
            data.update(data.pop("swept"))
            writer.writerow({k: data.get(k) for k in columns})
    return out


def format_table(rows: list[JobSummary]) -> str:
    """A plain-text table of the summary, for the terminal."""
    if not rows:
        return "no transcripts"
    swept = list(rows[0].swept)
    headers = [
        "job",
        *swept,
        "calls",
        "errors",
        "prompt tok",
        "compl tok",
        "cost $",
        "p50 s",
        "p95 s",
        "score",
        "judge $",
    ]
    body = [
        [
            _cell(r.job),
            *[_cell(r.swept[k]) for k in swept],
            _cell(r.calls),
            _cell(r.errors),
            _cell(r.prompt_tokens),
            _cell(r.completion_tokens),
            _cell(r.cost_usd, 6),
            _cell(r.latency_p50_s, 3),
            _cell(r.latency_p95_s, 3),
            _cell(r.mean_score, 3),
            _cell(r.judge_cost_usd, 6),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += [
        "  ".join(
            c.rjust(w) if c[:1].isdigit() or c[:1] == "-" else c.ljust(w)
            for c, w in zip(line, widths, strict=True)
        )
        for line in body
    ]
    return "\n".join(lines)


def _cell(value: Any, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}f}"
    return str(value)
