"""Totals of a set of records, added up by one rule wherever they are shown: a job's return
value, the live progress line, the summary's rows and the report's cells.

Records are added as they come (a call's records at a time, or a whole transcript); the
final answers among them are kept for scoring (``runner.analysis.stats``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.analysis.stats import Answer, final_records


@dataclass
class Totals:
    """What some records add up to. Token counts and sums are None until a record has one."""

    calls: int = 0  # records: one per API call and choice
    errors: int = 0  # records with an error
    skipped: int = 0  # of which turns not asked after a failed one
    turns: int = 0  # records that end a turn (the first choice of a turn's last call)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    estimated: bool = False  # some usage was counted locally, not reported by the server
    cost_usd: float | None = None  # the sum of the known costs
    latency_s: float | None = None  # the sum of the calls' latencies
    latencies: list[float] = field(default_factory=list)  # answered calls not from the cache
    answers: list[Answer] = field(default_factory=list)  # the final answers, for scoring
    # What is kept record by record, for those who need it: answers (scores) with their text
    # (agreement), and latencies (percentiles). A running count keeps neither.
    keep_answers: bool = field(default=True, repr=False)
    keep_text: bool = field(default=True, repr=False)
    keep_latencies: bool = field(default=True, repr=False)

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> Totals:
        """The totals of ``records``, answers with their text and latencies kept."""
        totals = cls()
        totals.add(list(records))
        return totals

    def add(self, records: Sequence[dict[str, Any]]) -> list[Answer]:
        """Add records (whole calls: every choice of a call together); returns the final
        answers among them, as they were added to ``answers``."""
        for record in records:
            self.calls += 1
            error = record.get("error")
            if error:
                self.errors += 1
                if isinstance(error, dict) and error.get("type") == "Skipped":
                    self.skipped += 1
            if not record.get("choice") and (error or not record.get("tool_calls")):
                self.turns += 1
            usage = record.get("usage")
            if isinstance(usage, dict):
                self.prompt_tokens = _plus(self.prompt_tokens, usage.get("prompt_tokens"))
                self.completion_tokens = _plus(
                    self.completion_tokens, usage.get("completion_tokens")
                )
                self.total_tokens = _plus(self.total_tokens, usage.get("total_tokens"))
                self.estimated = self.estimated or usage.get("source") == "estimate"
            cost = as_float(record.get("cost_usd"))
            if cost is not None:
                self.cost_usd = cost if self.cost_usd is None else self.cost_usd + cost
            latency = as_float(record.get("latency_s"))
            if latency is not None:
                self.latency_s = latency if self.latency_s is None else self.latency_s + latency
                if self.keep_latencies and not error and not record.get("cache_hit"):
                    self.latencies.append(latency)
        if not self.keep_answers:
            return []
        answers = []
        for record in final_records(records):  # whole calls: a tool loop's asking ones aside
            answer = self._answer(record)
            self.answers.append(answer)
            answers.append(answer)
        return answers

    def _answer(self, record: dict[str, Any]) -> Answer:
        """What scoring keeps of a final answer's record."""
        return Answer.of(record, keep_text=self.keep_text)


def as_float(value: Any) -> float | None:
    """A number as a float; None for anything else (a bool, NaN, text, None)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return None
    return float(value)


def _plus(total: int | None, value: Any) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return total
    return value if total is None else total + value
