"""The answers grid of the report: a row per question, a cell per configuration.

Rows are the questions (question set, conversation, turn) in the order they were asked, the
turns of a conversation together. A cell holds a question's answers in one configuration:
every sample and choice, each with the tool calls its turn made (the intermediate calls of a
tool loop are not rows of their own) and the history that was sent. Text is escaped (answers
are untrusted) and long text is cut to its first lines, the rest shown on click.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from runner.analysis.totals import Totals, as_float

# One short line without Markdown syntax reads the same as plain text, without the <p> margins.
_PLAIN_MAX = 200
_MARKDOWN_CHARS = re.compile(r"[*_`#\[\]|<>~\\]|^\s*(?:[-+]|\d+[.)])\s")
# Text longer than this shows its first lines, and the rest on click.
_LONG_LINES = 8
_LONG_CHARS = 700
_PREVIEW_LINES = 3
_PREVIEW_CHARS = 300

_RowKey = tuple[str, str, int | None]
# (sample, choice) -> step -> the records of that call (more than one when a run was resumed)
_Calls = dict[tuple[int, int], dict[int, list[dict[str, Any]]]]


@dataclass
class _Text:
    """Text as the page shows it: whole when short; else its first lines, the rest on click.

    Jinja puts it in the page through ``__html__`` (a macro per text costs seconds in a big
    sweep); ``cls`` is the class of the element that holds the whole text.
    """

    full: Markup
    cls: str
    preview: str | None = None
    size: str = ""

    def __html__(self) -> Markup:
        whole = Markup('<div class="{}">{}</div>').format(self.cls, self.full)
        if self.preview is None:
            return whole
        return Markup(
            '<details class="long"><summary><span class="preview">{}</span>'
            '<span class="more">show all · {}</span></summary>{}</details>'
        ).format(self.preview, self.size, whole)


@dataclass
class _ToolUse:
    """A tool call of a turn with what answered it, or what the model said between calls."""

    call: str | None = None
    output: _Text | None = None
    error: str | None = None
    said: _Text | None = None


@dataclass
class _Message:
    """One message of the history sent with a call."""

    role: str
    text: _Text | None
    calls: list[str]


@dataclass
class _Answer:
    """One answer to a question: a sample and choice, after every call of its tool loop."""

    label: str
    text: _Text | None
    refusal: _Text | None
    error: str | None
    error_detail: str | None
    score: float | None
    score_text: str
    score_class: str
    tokens: str
    latency: str
    cost: str
    notes: list[str]
    tools: list[_ToolUse]
    history: list[_Message]
    glance: str  # the first line, on the line that expands the answer
    records: int = 1


@dataclass
class _Cell:
    """A question's answers in one configuration."""

    answers: list[_Answer]
    score: float | None
    score_text: str
    score_class: str
    headline: str
    tokens: str
    cost: str

    @property
    def has_error(self) -> bool:
        return any(a.error is not None for a in self.answers)


@dataclass
class Row:
    """One question (question set, conversation, turn), with a cell per configuration."""

    question_set: str
    conversation_id: str
    turn: int | None
    question: _Text
    expected: str | None
    cells: list[_Cell | None]
    order: int = 0
    turns: int = 1  # the conversation's last turn number
    first: bool = True  # the first turn of its conversation shown

    @property
    def has_error(self) -> bool:
        return any(c is not None and c.has_error for c in self.cells)


class Grid:
    """The questions by configurations, filled one configuration's transcript at a time."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._rows: dict[_RowKey, Row] = {}
        # (question set, conversation) -> when it first appeared in the transcripts
        self._seen: dict[tuple[str, str], int] = {}

    def add(self, column: int, records: Iterable[dict[str, Any]]) -> int:
        """Put one configuration's records in its cells; returns the most answers one
        question got (samples × choices)."""
        calls: dict[_RowKey, _Calls] = {}
        for record in records:
            key = _row_key(record)
            self._seen.setdefault(key[:2], len(self._seen))
            if key not in self._rows:
                self._rows[key] = _new_row(record, key, self.width)
            answer = (_index(record, "sample"), _index(record, "choice"))
            steps = calls.setdefault(key, {}).setdefault(answer, {})
            steps.setdefault(_index(record, "step"), []).append(record)
        most = 1
        for key, answers in calls.items():
            cell = self._rows[key].cells[column] = _cell(answers)
            most = max(most, len(cell.answers))
        return most

    def rows(self, asked: dict[str, list[str]]) -> list[Row]:
        """The rows in the order the questions were asked: by question set, then by
        conversation, then by turn.

        ``asked`` maps a question set's name to its conversation ids in the set's order.
        Without it (or for a conversation it lacks) the order is that of first appearance in
        the transcripts, which concurrency can shuffle: conversations run side by side and
        records are written as calls finish.
        """
        sets: dict[str, int] = {}
        for question_set, _ in self._seen:
            sets.setdefault(question_set, len(sets))
        known = {(name, c): i for name, ids in asked.items() for i, c in enumerate(ids)}

        def order(row: Row) -> tuple[int, int, int, int]:
            conversation = (row.question_set, row.conversation_id)
            position = known.get(conversation)
            return (
                sets[row.question_set],
                0 if position is not None else 1,
                position if position is not None else self._seen[conversation],
                row.turn or 0,
            )

        ordered = sorted(self._rows.values(), key=order)
        last_turn: dict[tuple[str, str], int] = {}
        for row in ordered:
            conversation = (row.question_set, row.conversation_id)
            last_turn[conversation] = max(last_turn.get(conversation, 0), row.turn or 0)
        previous = None
        for index, row in enumerate(ordered):
            conversation = (row.question_set, row.conversation_id)
            row.order = index
            row.turns = last_turn[conversation]
            row.first = conversation != previous
            previous = conversation
        return ordered


# --- rows and cells ----------------------------------------------------------------------------


def _row_key(record: dict[str, Any]) -> _RowKey:
    conversation = (
        record.get("conversation_id") or record.get("question") or record.get("record_id")
    )
    turn = record.get("turn")
    turn = turn if isinstance(turn, int) and not isinstance(turn, bool) else None
    return (str(record.get("question_set") or ""), str(conversation or "?"), turn)


def _index(record: dict[str, Any], name: str) -> int:
    value = record.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _new_row(record: dict[str, Any], key: _RowKey, width: int) -> Row:
    expected = record.get("expected")
    return Row(
        question_set=key[0],
        conversation_id=key[1],
        turn=key[2],
        question=_plain(str(record.get("question") or ""), "q"),
        expected=None if expected is None else str(expected),
        cells=[None] * width,
    )


def _cell(calls: _Calls) -> _Cell:
    keys = sorted(calls)
    samples = len({s for s, _ in keys})
    choices = len({c for _, c in keys})
    answers = [
        _answer(calls[(sample, choice)], _answer_label(sample, choice, samples, choices))
        for sample, choice in keys
    ]
    if len(answers) == 1:
        answers[0].label = ""
    scores = [a.score for a in answers if a.score is not None]
    score = statistics.fmean(scores) if scores else None
    records = [r for steps in calls.values() for rs in steps.values() for r in rs[-1:]]
    totals = Totals.of(records)
    return _Cell(
        answers=answers,
        score=score,
        score_text=number_text(score),
        score_class=_score_class(score),
        headline=_headline(answers, samples, choices),
        tokens=_tokens(totals),
        cost=cost_text(totals.cost_usd),
    )


def _answer_label(sample: int, choice: int, samples: int, choices: int) -> str:
    parts = ([f"sample {sample}"] if samples > 1 else []) + (
        [f"choice {choice}"] if choices > 1 else []
    )
    return " · ".join(parts) or f"sample {sample}"


def _headline(answers: list[_Answer], samples: int, choices: int) -> str:
    """``3 samples: 2/3 correct`` for a question answered more than once."""
    if len(answers) == 1:
        return ""
    if samples > 1 and choices > 1:
        what = f"{len(answers)} answers ({samples} samples × {choices} choices)"
    else:
        what = f"{len(answers)} {'samples' if samples > 1 else 'choices'}"
    scored = [a.score for a in answers if a.score is not None]
    facts = [f"{sum(s >= 1 for s in scored)}/{len(answers)} correct"] if scored else []
    failed = sum(a.error is not None for a in answers)
    if failed:
        facts.append(f"{failed} failed")
    return what + (": " + ", ".join(facts) if facts else "")


def _answer(steps: dict[int, list[dict[str, Any]]], label: str) -> _Answer:
    """One answer from the calls of its turn: the last holds the answer and the score, the
    ones before it the tool calls the model made on the way."""
    order = sorted(steps)
    final = steps[order[-1]][-1]  # a resumed run re-ran the call: the last record wins
    records = [steps[n][-1] for n in order]
    totals = Totals.of(records)
    error_type, error_detail = _error(final.get("error"))
    score = as_float(final.get("score"))
    notes = []
    if any(r.get("cache_hit") for r in records):
        notes.append("cached")
    finish = final.get("finish_reason")
    if finish and finish != "stop":
        notes.append(f"finish: {finish}")
    if records[0].get("dropped_messages"):
        notes.append(f"{records[0]['dropped_messages']} messages trimmed")
    if totals.estimated:
        notes.append("tokens estimated")
    if len(records) > 1:
        notes.append(f"{len(records)} calls")
    answer = final.get("answer")
    refusal = final.get("refusal")
    return _Answer(
        label=label,
        text=None if answer is None else _rendered(str(answer)),
        refusal=_plain(str(refusal), "answer") if refusal else None,
        error=error_type,
        error_detail=error_detail,
        score=score,
        score_text=number_text(score),
        score_class=_score_class(score),
        tokens=_tokens(totals),
        latency=seconds_text(totals.latency_s),
        cost=cost_text(totals.cost_usd),
        notes=notes,
        tools=_tool_uses(records),
        history=_history(final.get("messages")),
        glance=_clip(_first_line(str(answer or refusal or error_type or "")), 90),
        records=len(steps[order[-1]]),
    )


def _error(error: Any) -> tuple[str | None, str | None]:
    if isinstance(error, dict):
        status = error.get("status")
        kind = str(error.get("type") or "error") + (f" ({status})" if status else "")
        return kind, str(error.get("message") or "")
    if error:
        return "error", str(error)
    return None, None


def _tool_uses(records: list[dict[str, Any]]) -> list[_ToolUse]:
    """The tool calls of a turn's calls in order, each with the result sent back for it.

    A call's ``tool_calls`` are what the model asked for in its answer; the next call's
    ``tool_results`` are what the tools said, matched by the call's id.
    """
    results: dict[str, dict[str, Any]] = {}
    for record in records:
        for result in _dicts(record.get("tool_results")):
            results[str(result.get("id"))] = result
    uses: list[_ToolUse] = []
    seen: set[str] = set()
    for record in records:
        calls = _dicts(record.get("tool_calls"))
        said = record.get("answer")
        if calls and isinstance(said, str) and said.strip():
            uses.append(_ToolUse(said=_plain(said, "said-text")))
        for call in calls:
            ident = str(call.get("id"))
            seen.add(ident)
            uses.append(_tool_use(call, results.get(ident)))
    # results whose call's record is missing (a transcript cut short) still show
    uses += [_tool_use(r, r) for ident, r in results.items() if ident not in seen]
    return uses


def _tool_use(call: dict[str, Any], result: dict[str, Any] | None) -> _ToolUse:
    output = None if result is None else result.get("output")
    error = None if result is None else result.get("error")
    return _ToolUse(
        call=_call_text(call),
        output=None if output is None else _plain(str(output), "tool-out"),
        error=None if not error else str(error),
    )


def _call_text(call: Any) -> str:
    """``name(arguments)`` of a tool call."""
    call = call if isinstance(call, dict) else {}
    return f"{call.get('name') or '?'}({_arguments(call.get('arguments'))})"


def _arguments(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def _history(messages: Any) -> list[_Message]:
    """The messages sent with the call (Chat Completions messages or Responses input items)."""
    shown = []
    for message in _dicts(messages):
        role = str(message.get("role") or message.get("type") or "?")
        content = message.get("content")
        if content is None and message.get("type") == "function_call_output":
            content = message.get("output")
        text = _content_text(content)
        # Chat's {"function": {"name", "arguments"}}; a Responses function_call item is flat
        calls = [_call_text(c.get("function")) for c in _dicts(message.get("tool_calls"))]
        if message.get("type") == "function_call":
            calls.append(_call_text(message))
        shown.append(_Message(role, None if text is None else _plain(text, "msg"), calls))
    return shown


def _content_text(content: Any) -> str | None:
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text, and anything else as JSON
        return "\n".join(
            str(p.get("text")) if isinstance(p, dict) and "text" in p else _json(p) for p in content
        )
    return _json(content)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# --- text --------------------------------------------------------------------------------------


@cache
def _markdown() -> MarkdownIt:
    # "html": False escapes raw HTML in answers; images are off because they would load a URL.
    return MarkdownIt("commonmark", {"html": False}).disable("image")


def _rendered(text: str) -> _Text:
    """An answer: Markdown rendered, collapsed to its first lines when long."""
    return _collapsed(text, _render_answer(text), "answer")


def _plain(text: str, cls: str) -> _Text:
    """Text shown as it is (escaped, line breaks kept), collapsed when long."""
    return _collapsed(text, escape(text), cls)


def _collapsed(text: str, full: Markup, cls: str) -> _Text:
    lines = text.strip().splitlines()
    if len(lines) <= _LONG_LINES and len(text) <= _LONG_CHARS:
        return _Text(full, cls)
    preview = _clip("\n".join(lines[:_PREVIEW_LINES]), _PREVIEW_CHARS)
    size = f"{len(lines):,} lines" if len(lines) > 1 else f"{len(text):,} characters"
    return _Text(full, cls, preview, size)


def _render_answer(text: str) -> Markup:
    """Markdown to HTML, or escaped plain text for a short line with nothing to render."""
    if "\n" not in text.strip() and len(text) <= _PLAIN_MAX and not _MARKDOWN_CHARS.search(text):
        return Markup('<p class="plain">') + escape(text) + Markup("</p>")
    return Markup(_markdown().render(text))


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- numbers -----------------------------------------------------------------------------------


def _score_class(score: float | None) -> str:
    if score is None:
        return "none"
    if score >= 1:
        return "pass"
    return "fail" if score <= 0 else "part"


def _tokens(totals: Totals) -> str:
    """``20 → 5 tok`` (``≈`` when counted locally); empty when no record has a count."""
    prompt, completion = totals.prompt_tokens, totals.completion_tokens
    if prompt is None and completion is None:
        return ""
    return f"{'≈' if totals.estimated else ''}{_int(prompt)} → {_int(completion)} tok"


def _int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "–"


def number_text(value: Any) -> str:
    if as_float(value) is None:
        return "–"
    return f"{round(value, 3):g}"


def seconds_text(value: Any) -> str:
    if as_float(value) is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def cost_text(value: Any) -> str:
    if as_float(value) is None:
        return "no price"
    if value == 0:
        return "$0"
    if value < 0.000001:
        return "<$0.000001"
    return "$" + f"{value:.6f}".rstrip("0").rstrip(".")
