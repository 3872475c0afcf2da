"""``judgments.jsonl``: the judge's verdicts on a job's answers, one line each, beside its
transcript (written by ``runner.core.judge``, read by ``runner.analysis.judgments``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from runner.base.record import CallError, TokenUsage

JUDGMENTS_NAME = "judgments.jsonl"


@dataclass(kw_only=True)
class Judgment:
    """One verdict on one answer: a line of ``judgments.jsonl``."""

    record_id: str
    judge_key: str
    judge: str
    judge_model: str
    base_url: str | None
    offline: bool
    scale: str
    threshold: int | None
    grade: int | None = None
    score: float | None = None
    passed: bool | None = None
    reasoning: str | None = None
    usage: TokenUsage = field(default_factory=lambda: TokenUsage(source="none"))
    cost_usd: float | None = None
    cached_cost_usd: float | None = None
    latency_s: float | None = None
    attempts: int = 0
    cache_hit: bool = False
    error: CallError | None = None
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
