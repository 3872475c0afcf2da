"""Scoring an answer against its expected answer: exact, contains, regex or numeric."""

from __future__ import annotations

import math
import re

from runner.config import ScorerSpec

SCORERS = ("exact", "contains", "regex", "numeric")
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def check_scorer(kind: str, expected: str | None, where: str) -> str | None:
    """Why ``kind`` cannot score ``expected`` (None when it can): unknown kind, bad regex,
    non-numeric expected answer."""
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
    return None


def score_answer(
    answer: str | None, expected: str | None, spec: ScorerSpec, kind: str | None = None
) -> float | None:
    """1.0 or 0.0 by the scorer ``kind`` (default: the set's); None when there is nothing to
    compare (no expected answer, or no answer)."""
    if expected is None or answer is None:
        return None
    kind = kind or spec.kind
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


def _normalize(text: str, spec: ScorerSpec, case: bool = True) -> str:
    if spec.normalize_whitespace:
        text = " ".join(text.split())
    return text.casefold() if case and spec.ignore_case else text


def _to_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None
