"""``report.html``: one self-contained page comparing every configuration of a run or sweep.

At the top, the totals of each configuration (a job) in a table that sorts by any column,
the best one marked, and its mean score plotted against cost and against latency. Below, a
grid with a row per question (the turns of a conversation together, in the order the
question set asked them) and a column per configuration: each cell holds that question's
answers (repeated samples and choices together, with the tool calls of the turn and the
history that was sent on demand). With many configurations the grid shows the best few as
columns; the table picks others. The grid's rows and cells come from ``runner.analysis.grid``, the
plots' geometry from ``runner.analysis.scatter``.

Built from the transcripts on disk with no pandas, so the CLI can write it at the end of every
run. The page makes no network request: CSS and script are inline, record text (untrusted)
is escaped, and a Content-Security-Policy forbids loading anything else.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from runner.analysis.grid import Grid, cost_text, number_text, seconds_text
from runner.analysis.overrides import show, shown_overrides
from runner.analysis.scatter import Datum, Scatter, plot
from runner.analysis.summary import JobSummary, job_overrides, summarize
from runner.analysis.totals import as_float
from runner.base.jobfile import read_job_facts
from runner.base.transcript import find_transcripts, read_records

REPORT_NAME = "report.html"
# Up to this many configurations every one is a column of the grid; beyond, the best
# GRID_BEST are (readable columns rather than dozens squeezed side by side).
GRID_ALL_UP_TO = 8
GRID_BEST = 4


@dataclass
class _Head:
    """A column of the totals table."""

    text: str
    title: str = ""
    numeric: bool = True
    descending: bool = False  # the first click sorts high to low (scores)


@dataclass
class _Stat:
    """One configuration's value in a column of the totals table."""

    text: str
    sort: str = ""  # what the column sorts by; empty sorts last either way
    extra: str = ""
    title: str = ""
    bad: bool = False


@dataclass
class _Column:
    """One configuration (a job): its label, totals and rank."""

    index: int
    label: str
    short: str
    parts: list[str]
    values: dict[str, str]  # swept key -> value as the user means it
    job: int | None
    job_dir: str
    model: str
    summary: JobSummary
    stats: list[_Stat] = field(default_factory=list)
    best: bool = False
    shown: bool = True  # a column of the grid when the page opens
    rank: int = 0
    answers: int = 1  # the most answers one question got (samples × choices)


def write_report(path: Path, summaries: list[JobSummary] | None = None) -> Path:
    """Write ``report.html`` into a run or sweep dir and return its path; ``summaries`` is
    ``summarize(path)`` when the caller has it already.

    A totals table (one row per job, the best marked) and two scatter plots (mean score
    against cost and against latency) at the top; below, one column per job (labelled by the
    values swept across jobs, or by the model for a single run) and one row per question and
    turn, in the question set's order. Each cell holds the answers (Markdown rendered, raw
    HTML escaped), tokens, latency, cost, score and any error.
    """
    path = Path(path)
    out_dir = path if path.is_dir() else path.parent
    transcripts = find_transcripts(path)
    if summaries is None:
        summaries = summarize(path)
    single = len(transcripts) == 1
    columns: list[_Column] = []
    grid = Grid(len(transcripts))
    asked: dict[str, list[str]] = {}
    shared: dict[str, str] | None = None
    for index, (transcript, summary) in enumerate(zip(transcripts, summaries, strict=True)):
        records = list(read_records(transcript))
        first = records[0] if records else None
        facts = read_job_facts(transcript.parent)
        overrides = shown_overrides(job_overrides(facts, first))
        column = _column(index, summary, first, transcript, out_dir, overrides, single)
        columns.append(column)
        shared = overrides if shared is None else _common(shared, overrides)
        column.answers = grid.add(index, records)
        if facts is not None:  # the job's question set, in its order
            asked.setdefault(facts.question_set, facts.conversations)
    rows = grid.rows(asked)
    _rank(columns)
    heads = _totals(columns)
    template = _environment().get_template("report.html.j2")
    html = template.render(
        title=out_dir.name or str(out_dir),
        path=str(out_dir),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        columns=columns,
        heads=heads,
        rows=rows,
        charts=_charts(columns) if len(columns) > 1 else [],
        shared=[f"{k}={v}" for k, v in (shared or {}).items()],
        records=sum(s.calls for s in summaries),
        errors=sum(s.errors for s in summaries),
        single=single,
        best=next((c for c in columns if c.best), None),
        grid_best=GRID_BEST,
        picked=sum(c.shown for c in columns),
    )
    out = out_dir / REPORT_NAME
    out.write_text(html, encoding="utf-8")
    return out


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("runner", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["csp_hash"] = _csp_hash
    return env


def _csp_hash(text: str) -> str:
    """The CSP source for an inline element whose content is exactly ``text``."""
    digest = hashlib.sha256(str(text).encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# --- configurations ----------------------------------------------------------------------------


def _common(shared: dict[str, str], mine: dict[str, str]) -> dict[str, str]:
    """The overrides of ``shared`` that ``mine`` has with the same value."""
    return {k: v for k, v in shared.items() if mine.get(k) == v}


def _column(
    index: int,
    summary: JobSummary,
    first: dict[str, Any] | None,
    transcript: Path,
    root: Path,
    overrides: dict[str, str],
    single: bool,
) -> _Column:
    model = str((first or {}).get("model") or (first or {}).get("served_model") or "?")
    values = {k: overrides.get(k, show(v)) for k, v in summary.swept.items()}
    parts = [f"{k}={v}" for k, v in values.items()]
    if single:
        parts = [model]
    elif not parts:  # several jobs that no override tells apart: name them by directory
        parts = [str(transcript.parent.relative_to(root)) if transcript.parent != root else model]
    return _Column(
        index=index,
        label=" · ".join(parts),
        short=f"#{summary.job}" if summary.job is not None else f"#{index}",
        parts=parts,
        values=values,
        job=summary.job,
        job_dir=summary.job_dir,
        model=model,
        summary=summary,
    )


def _score(summary: JobSummary) -> float | None:
    return as_float(summary.mean_score)


def _rank(columns: list[_Column]) -> None:
    """Mark the best configuration (highest mean score; at equal scores, the lower cost) and
    the ones the grid shows when the page opens."""

    def key(column: _Column) -> tuple[float, float, int]:
        score, cost = _score(column.summary), as_float(column.summary.cost_usd)
        return (
            -score if score is not None else math.inf,
            cost if cost is not None else math.inf,  # an unknown cost is never the lower one
            column.index,
        )

    ranked = sorted(columns, key=key)
    for rank, column in enumerate(ranked):
        column.rank = rank
        column.shown = len(columns) <= GRID_ALL_UP_TO or rank < GRID_BEST
    if ranked and _score(ranked[0].summary) is not None:
        ranked[0].best = True


def _totals(columns: list[_Column]) -> list[_Head]:
    """The totals table's columns; fills each configuration's ``stats`` to match."""
    summaries = [c.summary for c in columns]
    heads: list[_Head] = []
    swept = list(summaries[0].swept) if len(columns) > 1 else []
    if swept:
        for key in swept:
            numbers = [as_float(s.swept.get(key)) for s in summaries]
            numeric = all(n is not None for n in numbers)
            heads.append(_Head(key, f"the value of {key} in this configuration", numeric))
            for column, number in zip(columns, numbers, strict=True):
                text = column.values[key]
                column.stats.append(_Stat(text, repr(number) if numeric else text))
    else:
        heads.append(_Head("configuration", "the model, or the job's directory", numeric=False))
        for column in columns:
            column.stats.append(_Stat(column.label, column.label))
    heads += [
        _Head("calls", "records: one per API call (and per choice)"),
        _Head("errors", "calls that failed"),
        _Head("mean score", "mean score (95% interval when known)", descending=True),
    ]
    for column, s in zip(columns, summaries, strict=True):
        column.stats += [
            _Stat(str(s.calls), str(s.calls)),
            _Stat(str(s.errors), str(s.errors), bad=bool(s.errors)),
            _score_stat(s),
        ]
    answers = {c.answers for c in columns}
    k = f"pass@{min(answers)}" if len(answers) == 1 else "pass@k"
    optional = [
        ("pass_at_1", "pass@1", "chance that one answer is right"),
        ("pass_at_k", k, "chance that at least one of the k answers is right"),
        ("agreement", "agreement", "how often the answers to one question agree"),
    ]
    if answers == {1}:  # one answer per question: pass@1 and pass@k are the mean score
        optional = optional[2:]
    for name, head, title in optional:
        values = [as_float(getattr(s, name, None)) for s in summaries]
        if any(v is not None for v in values):
            heads.append(_Head(head, title, descending=True))
            for column, value in zip(columns, values, strict=True):
                column.stats.append(_Stat(number_text(value), _sort(value)))
    heads += [
        _Head("prompt tok", "prompt tokens"),
        _Head("completion tok", "completion tokens"),
        _Head("cost", "cost in USD from the model preset's prices"),
    ]
    for column, s in zip(columns, summaries, strict=True):
        column.stats += [
            _Stat(f"{s.prompt_tokens:,}", str(s.prompt_tokens)),
            _Stat(f"{s.completion_tokens:,}", str(s.completion_tokens)),
            _Stat(cost_text(s.cost_usd), _sort(s.cost_usd)),
        ]
    judge = [as_float(s.judge_cost_usd) for s in summaries]
    if any(v is not None for v in judge):
        heads.append(_Head("judge cost", "cost in USD of the calls that scored the answers"))
        for column, value in zip(columns, judge, strict=True):
            text = "–" if value is None else cost_text(value)  # no judge, or no price
            column.stats.append(_Stat(text, _sort(value)))
    heads += [
        _Head("latency p50", "median latency of a call (cache hits left out)"),
        _Head("p95", "95th percentile latency of a call"),
    ]
    for column, s in zip(columns, summaries, strict=True):
        column.stats += [
            _Stat(seconds_text(s.latency_p50_s), _sort(s.latency_p50_s)),
            _Stat(seconds_text(s.latency_p95_s), _sort(s.latency_p95_s)),
        ]
    return heads


def _score_stat(summary: JobSummary) -> _Stat:
    score = _score(summary)
    low = as_float(summary.ci95_low)
    high = as_float(summary.ci95_high)
    interval = low is not None and high is not None
    extra = f"{number_text(low)}–{number_text(high)}" if interval else ""
    counts = [
        f"{name}: {value}"
        for name in ("scored", "failed")
        if isinstance(value := getattr(summary, name, None), int)
    ]
    return _Stat(number_text(score), _sort(score), extra=extra, title=" · ".join(counts))


def _charts(columns: list[_Column]) -> list[tuple[str, str, Scatter | None, str]]:
    """(id, heading, plot, what is left out) of the score-against-cost and -latency plots."""
    charts = []
    for ident, heading, name, axis, prefix, suffix, lacking in [
        ("cost", "score against cost", "cost_usd", "cost (USD)", "$", "", "a price"),
        ("latency", "score against latency", "latency_p50_s", "latency p50 (s)", "", " s", ""),
    ]:
        data = []
        for c in columns:
            s = c.summary
            score = _score(s)
            data.append(
                Datum(
                    x=as_float(getattr(s, name)),
                    y=score,
                    label=c.short,
                    title=(
                        f"{c.short} {c.label}{' (best)' if c.best else ''}\n"
                        f"mean score {number_text(score)} · cost {cost_text(s.cost_usd)} · "
                        f"latency p50 {seconds_text(s.latency_p50_s)}"
                    ),
                    best=c.best,
                    y_low=as_float(s.ci95_low),
                    y_high=as_float(s.ci95_high),
                )
            )
        chart = plot(data, axis, "mean score", prefix, suffix)
        missing = len(data) - (len(chart.points) if chart else 0)
        what = f"without a score{' or ' + lacking if lacking else ''}"
        note = f"{missing} of {len(data)} configurations {what}: not shown" if missing else ""
        charts.append((ident, heading, chart, note))
    return charts


def _sort(value: Any) -> str:
    number = as_float(value)
    return "" if number is None else repr(number)
