"""Scoring an answer against its expected answer.

Text scorers: exact, contains, regex, numeric. ``json``: the answer is JSON (a surrounding
```json fence is allowed), valid under the run's schema if it has one, and holding every
key/value of the expected JSON if the turn has one. ``tool_call``: one of the turn's tool
calls has the expected name and (a subset of) the expected arguments, as in
``{"name": "get_weather", "arguments": {"city": "Paris"}}``; it scores the calls, not the
answer, so it scores a turn whose final answer is missing too. ``judge``: a model grades the
answer against a rubric after its record is written (``runner.core.judge``); the record's own
score stays null.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from runner.base.schema import ScorerSpec
from runner.core.structured import conforms
from runner.core.tools import ToolResult, parse_arguments
from runner.wire.completion import ToolCall

SCORERS = ("exact", "contains", "regex", "numeric", "json", "tool_call", "judge")
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"\A\s*```[ \t]*(?:json)?[ \t]*\n(.*?)\n?[ \t]*```\s*\Z", re.DOTALL | re.I)
_CALL_EXAMPLE = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


def check_scorer(kind: str, expected: str | None, where: str) -> str | None:
    """Why ``kind`` cannot score ``expected`` (None when it can): unknown kind, bad regex,
    non-numeric expected answer, expected JSON that is not JSON (or not a tool call)."""
    if kind not in SCORERS:
        return f"{where}: unknown scorer {kind!r}: use one of {', '.join(SCORERS)}"
    if expected is None:
        return None
    if kind == "regex":
        try:
            re.compile(expected)
        except re.error as exc:
            return f"{where}: expected {expected!r} is not a valid regex ({exc})"
    if kind == "numeric" and _to_number(expected) is None:
        return f"{where}: expected {expected!r} is not a number, as the numeric scorer needs"
    if kind in ("json", "tool_call"):
        try:
            value = json.loads(expected)
        except ValueError as exc:
            return (
                f"{where}: expected {expected!r} is not valid JSON ({exc}), as the {kind} "
                "scorer needs"
            )
        if kind == "tool_call":
            return _check_call(value, expected, where)
    return None


def _check_call(value: Any, expected: str, where: str) -> str | None:
    wanted = f"write it as {_CALL_EXAMPLE} (arguments optional)"
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return f"{where}: expected {expected!r} is not a tool call with a name: {wanted}"
    unknown = sorted(set(value) - {"name", "arguments"})
    if unknown:
        return f"{where}: expected {expected!r} has the unknown key {unknown[0]!r}: {wanted}"
    if not isinstance(value.get("arguments", {}), dict):
        return f"{where}: expected {expected!r} has arguments that are not an object: {wanted}"
    return None


def score_answer(
    answer: str | None,
    expected: str | None,
    spec: ScorerSpec,
    kind: str | None = None,
    *,
    tool_calls: Sequence[ToolResult | ToolCall] = (),
    schema: dict[str, Any] | None = None,
) -> float | None:
    """1.0 or 0.0 by the scorer ``kind`` (default: the set's); None when there is nothing to
    compare.

    ``tool_call`` scores ``tool_calls`` (the turn's, every round) whatever the answer, None
    only without an expected call. ``json`` checks the answer against ``schema`` (the run's
    response_format schema) and the expected JSON, either of which may be missing; None only
    without an answer. ``judge`` is always None here: the judge model scores it later. The
    other kinds need both an answer and an expected answer.
    """
    kind = kind or spec.kind
    if kind == "judge":  # graded later, by the judge model, into judgments.jsonl
        return None
    if kind == "tool_call":
        return None if expected is None else _score_calls(expected, tool_calls)
    if answer is None:
        return None
    if kind == "json":
        return _score_json(answer, expected, schema)
    if expected is None:
        return None
    if kind == "numeric":
        numbers = [n for n in map(_to_number, _NUMBER.findall(answer)) if n is not None]
        target = _to_number(expected)
        if not numbers or target is None:
            return 0.0
        return float(math.isclose(numbers[-1], target, rel_tol=0.0, abs_tol=spec.tolerance))
    text, want = _normalize(answer, spec), _normalize(expected, spec)
    if kind == "exact":
        return float(text.strip() == want.strip())
    if kind == "contains":
        return float(want.strip() in text)
    if kind == "regex":
        flags = re.IGNORECASE if spec.ignore_case else 0
        return float(re.search(expected, _normalize(answer, spec, case=False), flags) is not None)
    raise ValueError(f"unknown scorer {kind!r}")


def unfence(text: str) -> str:
    """JSON text without the Markdown fence (```json ... ```) a model may wrap it in."""
    fenced = _FENCE.match(text)
    return fenced.group(1) if fenced else text


def _score_json(answer: str, expected: str | None, schema: dict[str, Any] | None) -> float:
    try:
        value = json.loads(unfence(answer))
    except ValueError:
        return 0.0
    if schema is not None and not conforms(value, schema):
        return 0.0
    return float(expected is None or _contains(json.loads(expected), value))


def _score_calls(expected: str, calls: Sequence[ToolResult | ToolCall]) -> float:
    want = json.loads(expected)
    for item in calls:
        call = item.call if isinstance(item, ToolResult) else item
        if call.name != want["name"]:
            continue
        if "arguments" not in want:
            return 1.0
        try:
            arguments = parse_arguments(call.arguments)
        except ValueError:
            continue
        if _contains(want["arguments"], arguments):
            return 1.0
    return 0.0


def _contains(want: Any, got: Any) -> bool:
    """``got`` holds every key/value of ``want``, objects at any depth compared as subsets;
    everything else (arrays, strings, numbers, booleans, null) must be equal."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            k in got and _contains(v, got[k]) for k, v in want.items()
        )
    return _same(want, got)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 equals 1.0, but true is not 1 (as Python's == would have it)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _normalize(text: str, spec: ScorerSpec, case: bool = True) -> str:
    if spec.normalize_whitespace:
        text = " ".join(text.split())
    return text.casefold() if case and spec.ignore_case else text


def _to_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None
