"""The per-job summary of a run or sweep: printed at the end and written as ``summary.csv``.

Built from the transcripts on disk, not from memory, so it is right whichever launcher ran
the jobs and in whichever processes. No pandas: the CLI stays quick to start. Scores are
counted as ``runner.analysis.stats`` says (final answers only; failed ones score ``failed_score``),
the same figure a job returns to Hydra.
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.analysis.judgments import judge_costs, merge_judgments
from runner.analysis.results import parse_overrides, split_swept
from runner.analysis.stats import score_answers
from runner.analysis.totals import Totals
from runner.base.jobfile import JobFacts, read_job_facts
from runner.base.schema import RunConfig
from runner.base.transcript import find_transcripts, read_records

SUMMARY_NAME = "summary.csv"
# for a job dir without its job.json (a transcript copied elsewhere, a run from before it)
DEFAULT_FAILED_SCORE: float | None = RunConfig.failed_score
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
    """Totals of one job's transcript, and its score figures (see ``runner.analysis.stats``)."""

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
    ci95_low: float | None = None  # 95% confidence interval of mean_score
    ci95_high: float | None = None
    ci_method: str | None = None  # wilson (every score 0 or 1) or bootstrap (graded scores)
    scored: int = 0  # answers with a score of their own
    failed: int = 0  # failed answers counted in mean_score as failed_score
    failed_score: float | None = DEFAULT_FAILED_SCORE
    k: int | None = None  # answers per question: repeat x sampling.n
    pass_at_1: float | None = None
    pass_at_k: float | None = None
    agreement: float | None = None  # blank when no question has two answers


def job_overrides(facts: JobFacts | None, first_record: dict[str, Any] | None) -> list[str]:
    """The job's overrides that shape its answers: from its ``job.json``, else its records."""
    if facts is not None:
        return list(facts.overrides)
    overrides = first_record.get("overrides") if first_record else None
    return [str(o) for o in overrides] if isinstance(overrides, list) else []


def _as_failed_score(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize(path: Path, failed_score: float | None = DEFAULT_FAILED_SCORE) -> list[JobSummary]:
    """One summary per transcript under ``path``; ``swept`` holds the keys that differ (every
    key a single job sets). Each job's failed answers score its own ``failed_score``: from
    its ``job.json``, else from its overrides, else the ``failed_score`` given."""
    rows: list[JobSummary] = []
    overrides: list[dict[str, Any]] = []
    for transcript in find_transcripts(path):
        records = merge_judgments(list(read_records(transcript)), transcript.parent)
        facts = read_job_facts(transcript.parent)
        first = records[0] if records else None
        overrides.append(parse_overrides(job_overrides(facts, first)))
        if facts is not None:
            rule = facts.failed_score
        else:  # a job run from Python has no job.json: an override in its records still says
            rule = _as_failed_score(overrides[-1].get("failed_score", failed_score))
        rows.append(_summarize_job(transcript.parent, records, rule))
    varying, constant = split_swept(overrides)
    shown = varying if len(overrides) > 1 else [*varying, *constant]
    for row, job_overrides_ in zip(rows, overrides, strict=True):
        row.swept = {k: job_overrides_.get(k) for k in shown}
    return rows


def _summarize_job(
    job_dir: Path, records: list[dict[str, Any]], failed_score: float | None
) -> JobSummary:
    row = JobSummary(job_dir=str(job_dir), job=records[0].get("job") if records else None)
    totals = Totals.of(records)
    row.calls, row.errors = totals.calls, totals.errors
    row.prompt_tokens = totals.prompt_tokens or 0
    row.completion_tokens = totals.completion_tokens or 0
    row.cost_usd = None if totals.cost_usd is None else round(totals.cost_usd, 8)
    row.judge_cost_usd = judge_costs(job_dir)
    if totals.latencies:
        row.latency_p50_s = round(statistics.median(totals.latencies), 4)
        row.latency_p95_s = round(_percentile(totals.latencies, 95), 4)
    scores = score_answers(totals.answers, failed_score)
    row.failed_score = failed_score
    row.scored, row.failed, row.k, row.ci_method = (
        scores.scored,
        scores.failed,
        scores.k,
        scores.ci_method,
    )
    row.mean_score = _round(scores.mean)
    row.ci95_low, row.ci95_high = _round(scores.ci_low), _round(scores.ci_high)
    row.pass_at_1, row.pass_at_k = _round(scores.pass_at_1), _round(scores.pass_at_k)
    row.agreement = _round(scores.agreement)
    return row


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _percentile(values: list[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


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
    """A plain-text table of the summary, for the terminal, with a footer saying how scores
    were counted."""
    if not rows:
        return "no transcripts"
    swept = list(rows[0].swept)
    ks = sorted({r.k for r in rows if r.k is not None and r.mean_score is not None})
    repeated = any(k > 1 for k in ks)
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
        "95% CI",
        "scored",
        "failed",
    ]
    judged = any(r.judge_cost_usd is not None for r in rows)
    if judged:
        headers.append("judge $")
    if repeated:
        headers += [*(["k"] if len(ks) > 1 else []), "pass@1", _pass_at_k_header(ks), "agree"]
    body = []
    for r in rows:
        line = [
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
            _interval(r.ci95_low, r.ci95_high),
            _cell(r.scored),
            _cell(r.failed),
        ]
        if judged:
            line.append(_cell(r.judge_cost_usd, 6))
        if repeated:
            line += [
                *([_cell(r.k)] if len(ks) > 1 else []),
                _cell(r.pass_at_1, 3),
                _cell(r.pass_at_k, 3),
                _cell(r.agreement, 3),
            ]
        body.append(line)
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += [
        "  ".join(
            c.rjust(w) if c[:1].isdigit() or c[:1] == "-" else c.ljust(w)
            for c, w in zip(line, widths, strict=True)
        )
        for line in body
    ]
    if any(r.mean_score is not None for r in rows):
        lines.append(
            f"score: mean of the final answers; {_failed_rule(rows)}; 95% CI: Wilson for "
            "pass/fail scores, bootstrap for graded ones"
        )
    if repeated:
        lines.append(
            f"{_pass_at_k_header(ks)}: k = answers per question (repeat x sampling.n); agree: "
            "share of a question's answers equal to its most common one"
        )
    return "\n".join(lines)


def _failed_rule(rows: list[JobSummary]) -> str:
    rules = {r.failed_score for r in rows if r.mean_score is not None}
    if len(rules) > 1:
        return "failed calls score each job's failed_score"
    (rule,) = rules
    if rule is None:
        return "failed calls are left out (failed_score=null)"
    return f"failed calls score {rule!r} (failed_score)"


def _pass_at_k_header(ks: list[int]) -> str:
    return f"pass@{ks[0]}" if len(ks) == 1 else "pass@k"


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{low:.3f}-{high:.3f}"


def _cell(value: Any, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}f}"
    return str(value)
