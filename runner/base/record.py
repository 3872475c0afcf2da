"""The JSONL record: one line per API call, the contract with everyone who reads transcripts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TokenUsage:
    """Token counts of one call, as the API reported them (or as estimated, see ``source``)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    # "api": reported by the server; "api_split": the server's figures for a call with n > 1
    # choices, shared among them (see ``split_usage``); "estimate": counted locally;
    # "none": no call was made
    source: str = "api"


@dataclass
class CallError:
    """Why a call produced no answer (or, for ``ContentFilter``, only part of one)."""

    type: str
    message: str
    status: int | None = None


@dataclass
class AttemptError:
    """One attempt of a call that failed, and whether the server may have billed it.

    ``charged`` is true when the server had started answering (an HTTP 200: it bills the
    tokens it generated), false when it refused the request (an error status, or no
    connection), and null when it cannot be known (the connection broke before any answer).
    """

    attempt: int
    type: str
    status: int | None = None
    charged: bool | None = None


@dataclass(kw_only=True)
class TranscriptRecord:
    """One API call: identity, config, content, tokens and cost, timing and provenance."""

    # identity
    record_id: str
    config_hash: str = ""
    job: int | None
    overrides: list[str]
    created_at: str
    # config
    model: str
    base_url: str | None
    offline: bool
    api: str = "chat"
    system: str
    system_message: str
    params: dict[str, Any]
    tools: str = "none"
    question_set: str
    # content
    conversation_id: str
    turn: int
    step: int = 0
    sample: int = 0
    choice: int = 0
    question: str
    answer: str | None
    refusal: str | None = None
    expected: str | None
    messages: list[dict[str, Any]]
    dropped_messages: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    output_items: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] | None = None
    # tokens and cost
    usage: TokenUsage
    estimated_prompt_tokens: int | None
    token_count_method: str
    cost_usd: float | None
    cached_cost_usd: float | None = None
    retried_usage: TokenUsage | None = None
    # timing and provenance
    latency_s: float | None
    ttft_s: float | None
    attempts: int
    cache_hit: bool
    finish_reason: str | None
    response_id: str | None
    served_model: str | None
    system_fingerprint: str | None
    batch_id: str | None = None  # the Batch API batch that answered it (batch=true)
    attempt_errors: list[AttemptError] = field(default_factory=list)
    error: CallError | None = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as it is written: plain JSON types, nested groups as objects."""
        # Shallow on purpose: only the two nested records need converting, and a deep copy
        # of every message list is a measurable share of a fast run's CPU.
        data = {f.name: getattr(self, f.name) for f in _FIELDS}
        data["usage"] = dataclasses.asdict(self.usage)
        data["retried_usage"] = (
            None if self.retried_usage is None else dataclasses.asdict(self.retried_usage)
        )
        data["attempt_errors"] = [dataclasses.asdict(a) for a in self.attempt_errors]
        data["error"] = None if self.error is None else dataclasses.asdict(self.error)
        if not data["extra"]:
            del data["extra"]
        return data


_FIELDS = dataclasses.fields(TranscriptRecord)
