"""``report.html``: one self-contained page comparing every configuration's answers side by side.

Rows are the questions (question set, conversation, turn), columns the jobs of a run or sweep,
labelled by their swept values. Built from the transcripts on disk with no pandas, so the CLI
can write it at the end of every run. The page makes no network request: CSS and script are
inline, answers (untrusted text) are escaped, and a Content-Security-Policy forbids loading
anything else.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from runner.summary import (
    JobSummary,
    find_transcripts,
    job_overrides,
    parse_override,
    summarize,
)
from runner.transcript import read_records

REPORT_NAME = "report.html"
# One short line without Markdown syntax reads the same as plain text, without the <p> margins.
_PLAIN_MAX = 200
_MARKDOWN_CHARS = re.compile(r"[*_`#\[\]|<>~\\]|^\s*(?:[-+]|\d+[.)])\s")


@dataclass
class _Cell:
    """One record as shown in the grid."""

    answer: Markup | None
    error: str | None
    error_detail: str | None
    score: float | None
    score_text: str
    score_class: str
    tokens: str
    latency: str
    cost: str
    notes: list[str]
    records: int = 1


@dataclass
class _Row:
    """One question (question set, conversation, turn), with a cell per configuration."""

    question_set: str
    conversation_id: str
    turn: int | None
    question: str
    expected: str | None
    cells: list[_Cell | None]
    order: int = 0

    @property
    def has_error(self) -> bool:
        return any(c is not None and c.error is not None for c in self.cells)


@dataclass
class _Column:
    """One configuration (a job) and its totals."""

    label: str
    parts: list[str]
    job: int | None
    job_dir: str
    model: str
    summary: JobSummary
    totals: dict[str, str] = field(default_factory=dict)


def write_report(path: Path) -> Path:
    """Write ``report.html`` into a run or sweep dir and return its path.

    One column per job (labelled by the values swept across jobs, or by the model for a single
    run), one row per question and turn; each cell holds the answer (Markdown rendered, raw HTML
    escaped), tokens, latency, cost, score and any error. Above the grid, per-job totals.
    """
    path = Path(path)
    out_dir = path if path.is_dir() else path.parent
    transcripts = find_transcripts(path)
    summaries = summarize(path)
    columns: list[_Column] = []
    rows: dict[tuple[str, str, int | None], _Row] = {}
    shared: dict[str, Any] | None = None
    for index, (transcript, summary) in enumerate(zip(transcripts, summaries, strict=True)):
        records = list(read_records(transcript))
        first = records[0] if records else None
        columns.append(_column(summary, first, transcript, out_dir, single=len(transcripts) == 1))
        pairs = [parse_override(o) for o in job_overrides(transcript.parent, first)]
        mine = dict(p for p in pairs if p is not None)
        shared = mine if shared is None else _common(shared, mine)
        for record in records:
            key = _row_key(record)
            row = rows.get(key)
            if row is None:
                row = rows[key] = _new_row(record, key, len(transcripts))
            previous = row.cells[index]
            cell = row.cells[index] = _cell(record)
            if previous is not None:  # a resumed run re-ran the call: the last record wins
                cell.records = previous.records + 1
    # Records arrive in completion order, which concurrency shuffles: sort rows by their key.
    ordered = sorted(rows.values(), key=_natural_row_key)
    for order, row in enumerate(ordered):
        row.order = order
    template = _environment().get_template("report.html.j2")
    html = template.render(
        title=out_dir.name or str(out_dir),
        path=str(out_dir),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        columns=columns,
        rows=ordered,
        shared=[f"{k}={_value(v)}" for k, v in (shared or {}).items()],
        records=sum(s.calls for s in summaries),
        errors=sum(s.errors for s in summaries),
        single=len(columns) == 1,
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


@cache
def _markdown() -> MarkdownIt:
    # "html": False escapes raw HTML in answers; images are off because they would load a URL.
    return MarkdownIt("commonmark", {"html": False}).disable("image")


def _csp_hash(text: str) -> str:
    """The CSP source for an inline element whose content is exactly ``text``."""
    digest = hashlib.sha256(str(text).encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _column(
    summary: JobSummary,
    first: dict[str, Any] | None,
    transcript: Path,
    root: Path,
    single: bool,
) -> _Column:
    model = str((first or {}).get("model") or (first or {}).get("served_model") or "?")
    parts = [f"{k}={_value(v)}" for k, v in summary.swept.items()]
    if single:
        parts = [model]
    elif not parts:  # several jobs that no override tells apart: name them by directory
        parts = [str(transcript.parent.relative_to(root)) if transcript.parent != root else model]
    column = _Column(
        label=" · ".join(parts),
        parts=parts,
        job=summary.job,
        job_dir=summary.job_dir,
        model=model,
        summary=summary,
    )
    column.totals = {
        "calls": str(summary.calls),
        "errors": str(summary.errors),
        "prompt": f"{summary.prompt_tokens:,}",
        "completion": f"{summary.completion_tokens:,}",
        "cost": _cost(summary.cost_usd),
        "p50": _seconds(summary.latency_p50_s),
        "p95": _seconds(summary.latency_p95_s),
        "score": _number(summary.mean_score),
    }
    return column


def _row_key(record: dict[str, Any]) -> tuple[str, str, int | None]:
    conversation = (
        record.get("conversation_id") or record.get("question") or record.get("record_id")
    )
    turn = record.get("turn")
    turn = turn if isinstance(turn, int) and not isinstance(turn, bool) else None
    return (str(record.get("question_set") or ""), str(conversation or "?"), turn)


def _new_row(record: dict[str, Any], key: tuple[str, str, int | None], width: int) -> _Row:
    expected = record.get("expected")
    return _Row(
        question_set=key[0],
        conversation_id=key[1],
        turn=key[2],
        question=str(record.get("question") or ""),
        expected=None if expected is None else str(expected),
        cells=[None] * width,
    )


def _natural_row_key(row: _Row) -> tuple[Any, ...]:
    return (_natural(row.question_set), _natural(row.conversation_id), row.turn or 0)


def _common(shared: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    """The overrides of ``shared`` that ``mine`` has with the same value."""
    return {k: v for k, v in shared.items() if k in mine and repr(mine[k]) == repr(v)}


def _natural(text: str) -> list[tuple[int, Any]]:
    # (kind, value) pairs so that numbers and words never compare with each other
    return [(0, int(t)) if t.isdigit() else (1, t.lower()) for t in re.split(r"(\d+)", text)]


def _cell(record: dict[str, Any]) -> _Cell:
    raw_usage = record.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    error = record.get("error")
    error_type = error_detail = None
    if isinstance(error, dict):
        status = error.get("status")
        error_type = str(error.get("type") or "error") + (f" ({status})" if status else "")
        error_detail = str(error.get("message") or "")
    elif error:
        error_type, error_detail = "error", str(error)
    score = record.get("score")
    score = float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None
    estimated = usage.get("source") == "estimate"
    notes = []
    if record.get("cache_hit"):
        notes.append("cached")
    finish = record.get("finish_reason")
    if finish and finish != "stop":
        notes.append(f"finish: {finish}")
    if record.get("dropped_messages"):
        notes.append(f"{record['dropped_messages']} messages trimmed")
    if estimated:
        notes.append("tokens estimated")
    answer = record.get("answer")
    return _Cell(
        answer=None if answer is None else _render_answer(str(answer)),
        error=error_type,
        error_detail=error_detail,
        score=score,
        score_text=_number(score),
        score_class=_score_class(score),
        tokens=_tokens(usage.get("prompt_tokens"), usage.get("completion_tokens"), estimated),
        latency=_seconds(record.get("latency_s")),
        cost=_cost(record.get("cost_usd")),
        notes=notes,
    )


def _render_answer(text: str) -> Markup:
    """Markdown to HTML, or escaped plain text for a short line with nothing to render."""
    if "\n" not in text.strip() and len(text) <= _PLAIN_MAX and not _MARKDOWN_CHARS.search(text):
        return Markup('<p class="plain">') + escape(text) + Markup("</p>")
    return Markup(_markdown().render(text))


def _score_class(score: float | None) -> str:
    if score is None:
        return "none"
    if score >= 1:
        return "pass"
    return "fail" if score <= 0 else "part"


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _tokens(prompt: Any, completion: Any, estimated: bool) -> str:
    if prompt is None and completion is None:
        return ""
    return f"{'≈' if estimated else ''}{_int(prompt)} → {_int(completion)} tok"


def _int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "–"


def _number(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{round(value, 3):g}"


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _cost(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "no price"
    if value == 0:
        return "$0"
    if value < 0.000001:
        return "<$0.000001"
    return "$" + f"{value:.6f}".rstrip("0").rstrip(".")
