"""The scores of a job's answers: which records count, the mean with a 95% confidence
interval, pass@k and agreement.

Only a turn's final records hold its answers: in a tool loop, a call that asked for tools
(and did not fail) is an intermediate step and counts for nothing. A final record that
failed (an error, ``Skipped`` included: a planned answer that was not given) scores
``failed_score`` when that is not None, if its question is scored at all (it has an
expected answer, or another answer to it got a score); a record that carries its own score
keeps it. The CLI's summary, ``JobResult.mean_score`` (what a job returns to Hydra) and
anyone reading transcripts use these functions, so they agree.

Plain Python; numpy (which pandas brings) only for the bootstrap of graded scores.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Z_95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same transcripts give the same interval every time


@dataclass(frozen=True, slots=True)
class Answer:
    """What scoring needs of one final record (kept small: a job holds one per answer)."""

    question: str  # ``<conversation_id>#<turn>``
    score: float | None  # the record's own score
    failed: bool  # the record has an error
    expected: bool  # its question has an expected answer
    text: str | None = None  # the answer, for agreement; None when failed or not kept

    @classmethod
    def of(cls, record: dict[str, Any], keep_text: bool = True) -> Answer:
        failed = bool(record.get("error"))
        answer = record.get("answer")
        return cls(
            question=sys.intern(question_key(record)),  # one string per question, not per answer
            score=_number(record.get("score")),
            failed=failed,
            expected=record.get("expected") is not None,
            text=answer if keep_text and not failed and isinstance(answer, str) else None,
        )


@dataclass
class Scores:
    """A job's score figures; None where there is nothing to compute them from."""

    mean: float | None = None
    ci_low: float | None = None  # 95% confidence interval of the mean
    ci_high: float | None = None
    ci_method: str | None = None  # "wilson" (every score 0 or 1) or "bootstrap"
    scored: int = 0  # answers with a score of their own
    failed: int = 0  # failed answers counted as ``failed_score``
    k: int | None = None  # answers per question (repeat x sampling.n)
    pass_at_1: float | None = None
    pass_at_k: float | None = None
    agreement: float | None = None  # None when no question has two answers


def question_key(record: dict[str, Any]) -> str:
    """``<conversation_id>#<turn>``: one question of a question set, across samples and choices."""
    return f"{record.get('conversation_id')}#{record.get('turn')}"


def is_intermediate(record: dict[str, Any]) -> bool:
    """A tool-loop call that asked for tools: the turn's answer comes in a later call."""
    return bool(record.get("tool_calls")) and not record.get("error")


def final_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that hold a turn's answers, in the order given.

    A call is intermediate when its first choice asked for tools without failing (the loop
    goes on with that choice); every choice of such a call is left out.
    """
    records = list(records)
    intermediate = {_call_key(r) for r in records if r.get("choice", 0) == 0 and is_intermediate(r)}
    return [r for r in records if not is_intermediate(r) and _call_key(r) not in intermediate]


def _call_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record.get("conversation_id"),
        record.get("turn"),
        record.get("sample", 0),
        record.get("step", 0),
    )


def effective_scores(
    answers: Sequence[Answer], failed_score: float | None
) -> tuple[dict[str, list[float]], int, int]:
    """Each question's scores as they count (own score, or ``failed_score`` for a failure of
    a scored question), the number of own scores and the number of failures counted."""
    scored_questions = {a.question for a in answers if a.expected or a.score is not None}
    by_question: dict[str, list[float]] = defaultdict(list)
    scored = failed = 0
    for a in answers:
        if a.score is not None:
            by_question[a.question].append(a.score)
            scored += 1
        elif a.failed and failed_score is not None and a.question in scored_questions:
            by_question[a.question].append(failed_score)
            failed += 1
    return by_question, scored, failed


def mean_score(answers: Sequence[Answer], failed_score: float | None) -> float | None:
    """The mean of every answer's score as it counts; None when nothing is scored."""
    by_question, _, _ = effective_scores(answers, failed_score)
    values = [s for scores in by_question.values() for s in scores]
    return statistics.fmean(values) if values else None


def score_answers(answers: Sequence[Answer], failed_score: float | None) -> Scores:
    """Every score figure of one job's final answers."""
    by_question, scored, failed = effective_scores(answers, failed_score)
    result = Scores(scored=scored, failed=failed, agreement=agreement(answers))
    per_question = Counter(a.question for a in answers)
    result.k = max(per_question.values(), default=None)
    values = [s for scores in by_question.values() for s in scores]
    if not values or result.k is None:
        return result
    result.mean = statistics.fmean(values)
    if all(v in (0.0, 1.0) for v in values):
        result.ci_low, result.ci_high = wilson_interval(sum(values), len(values))
        result.ci_method = "wilson"
    else:
        result.ci_low, result.ci_high = bootstrap_interval(values)
        result.ci_method = "bootstrap"
    passes = [(len(s), sum(1 for v in s if v == 1.0)) for s in by_question.values()]
    result.pass_at_1 = statistics.fmean(c / n for n, c in passes)
    result.pass_at_k = statistics.fmean(pass_at_k(n, c, result.k) for n, c in passes)
    return result


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: ``successes`` out of ``n`` trials."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # exactly 0 (1) when nothing (everything) passed, which rounding would miss by 1e-17
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def bootstrap_interval(
    values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the means of ``values`` resampled with replacement."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    # in slices, so that a large job never holds resamples x answers indices at once
    per_slice = max(1, 5_000_000 // len(data))
    means = np.concatenate(
        [
            data[
                rng.integers(0, len(data), size=(min(per_slice, resamples - done), len(data)))
            ].mean(axis=1)
            for done in range(0, resamples, per_slice)
        ]
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of the chance that at least one of ``k`` answers drawn from ``n``
    (``c`` of them correct) is correct: 1 - C(n-c, k) / C(n, k). With fewer than ``k``
    answers: whether any is correct."""
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def agreement(answers: Sequence[Answer]) -> float | None:
    """Per question, the share of its answers equal to the most common one (whitespace and
    case aside), averaged over the questions with at least two answers; None without any."""
    texts: dict[str, list[str]] = defaultdict(list)
    for a in answers:
        if a.text is not None:
            texts[a.question].append(" ".join(a.text.split()).casefold())
    shares = [
        Counter(group).most_common(1)[0][1] / len(group)
        for group in texts.values()
        if len(group) >= 2
    ]
    return statistics.fmean(shares) if shares else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)
