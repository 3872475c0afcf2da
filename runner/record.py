"""The JSONL record: one line per API call, the contract with everyone who reads transcripts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.config import Prices


@dataclass
class TokenUsage:
    """Token counts of one call, as the API reported them (or as estimated, see ``source``)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    source: str = "api"  # "api": reported by the server; "estimate": counted locally


@dataclass
class CallError:
    """Why a call produced no answer."""

    type: str
    message: str
    status: int | None = None


@dataclass
class TranscriptRecord:
    """One API call: identity, config, content, tokens and cost, timing and provenance."""

    # identity
    record_id: str
    job: int | None
    overrides: list[str]
    created_at: str
    # config
    model: str
    base_url: str | None
    offline: bool
    system: str
    system_message: str
    params: dict[str, Any]
    question_set: str
    # content
    conversation_id: str
    turn: int
    question: str
    answer: str | None
    expected: str | None
    messages: list[dict[str, str]]
    dropped_messages: int
    # tokens and cost
    usage: TokenUsage
    estimated_prompt_tokens: int | None
    token_count_method: str
    cost_usd: float | None
    # timing and provenance
    latency_s: float | None
    ttft_s: float | None
    attempts: int
    cache_hit: bool
    finish_reason: str | None
    response_id: str | None
    served_model: str | None
    system_fingerprint: str | None
    error: CallError | None = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as it is written: plain JSON types, nested groups as objects."""
        # Shallow on purpose: only the two nested records need converting, and a deep copy
        # of every message list is a measurable share of a fast run's CPU.
        data = {f.name: getattr(self, f.name) for f in _FIELDS}
        data["usage"] = dataclasses.asdict(self.usage)
        data["error"] = None if self.error is None else dataclasses.asdict(self.error)
        if not data["extra"]:
            del data["extra"]
        return data


_FIELDS = dataclasses.fields(TranscriptRecord)


def estimated_usage(
    count_text: Callable[[str], int], prompt: int | None, answer: str
) -> TokenUsage:
    """Usage counted locally, for a server that reported none (``source`` says so)."""
    completion = count_text(answer) if answer else 0
    return TokenUsage(prompt, completion, (prompt or 0) + completion, None, None, "estimate")


def cost_usd(usage: TokenUsage, prices: Prices) -> float | None:
    """Cost of one call from list prices (USD per 1M tokens); None when a price is unknown."""
    if usage.prompt_tokens is None or usage.completion_tokens is None:
        return None
    if prices.input is None or prices.output is None:
        return None
    cached = usage.cached_tokens or 0
    cached_price = prices.cached_input if prices.cached_input is not None else prices.input
    fresh = max(usage.prompt_tokens - cached, 0)
    total = fresh * prices.input + cached * cached_price + usage.completion_tokens * prices.output
    return round(total / 1_000_000, 10)
