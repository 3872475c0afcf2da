"""What a call cost: the one rule that turns a call's usage into dollars (spent, cached and
retried), for a job's records, the notebook chat, the judge and batches alike.

``call_cost`` is the rule. A call that answered costs its usage at the preset's prices, plus
what its failed attempts the server billed had used (a stream that broke mid-answer is billed
for what had streamed); a cache hit cost nothing now and keeps what the original call cost; a
call that never answered costs its billed attempts, nothing when no attempt can have been
billed, and is unknown when one may have been. Prices are USD per 1M tokens; a price that is
not known gives an unknown cost, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runner.base.record import TokenUsage
from runner.base.schema import Prices
from runner.wire.gateway import CallOutcome


@dataclass(frozen=True)
class Charge:
    """What one call (or one choice's share of it) cost: ``cost_usd`` (0 for a cache hit,
    None when it cannot be known), ``cached_cost_usd`` (a cache hit: what the original call
    cost) and ``retried`` (the usage of failed attempts the server billed, included in
    ``cost_usd``)."""

    cost_usd: float | None
    cached_cost_usd: float | None = None
    retried: TokenUsage | None = None


def call_cost(
    outcome: CallOutcome,
    spent: TokenUsage | None,
    prices: Prices,
    estimate: int,
    count_text: Callable[[str], int],
    *,
    with_retries: bool = True,
) -> Charge:
    """The cost of one call from its outcome and ``spent``, the usage of its answer (or of one
    choice's share of it; None when no answer came back).

    ``estimate`` (the prompt's tokens counted before the call) and ``count_text`` estimate the
    usage of billed attempts whose stream broke before it reported any. With several choices
    to a call, the first carries the billed attempts and the others are called with
    ``with_retries=False``.
    """
    retried = billed_attempts(outcome, estimate, count_text) if with_retries else None
    retry_cost = cost_usd(retried, prices) if retried is not None else 0.0
    if spent is None:  # nothing came back: only attempts that had started answering are billed
        if retried is not None:
            return Charge(retry_cost, None, retried)
        if not with_retries:
            return Charge(0.0)
        unknown = any(a.charged is None for a in outcome.attempt_errors)
        return Charge(None if unknown else 0.0)
    cost = cost_usd(spent, prices)
    if cost is not None and retry_cost is not None:
        cost += retry_cost
    if outcome.cache_hit:
        return Charge(0.0, cost, retried)
    return Charge(cost, None, retried)


def cost_usd(usage: TokenUsage, prices: Prices) -> float | None:
    """The list price of some usage (USD per 1M tokens); None when a price or a count is
    unknown. Cached prompt tokens are priced as cached input when the preset says what that
    costs."""
    if usage.prompt_tokens is None or usage.completion_tokens is None:
        return None
    if prices.input is None or prices.output is None:
        return None
    cached = usage.cached_tokens or 0
    cached_price = prices.cached_input if prices.cached_input is not None else prices.input
    fresh = max(usage.prompt_tokens - cached, 0)
    total = fresh * prices.input + cached * cached_price + usage.completion_tokens * prices.output
    return round(total / 1_000_000, 10)


def batch_prices(prices: Prices) -> Prices:
    """What a call through the Batch API costs: the preset's batch prices, and cached input at
    half the cached price (price tables give none for batches); unknown without batch prices."""
    cached = prices.cached_input / 2 if prices.cached_input is not None else prices.input_batch
    return Prices(input=prices.input_batch, cached_input=cached, output=prices.output_batch)


def billed_attempts(
    outcome: CallOutcome, prompt_tokens: int, count_text: Callable[[str], int]
) -> TokenUsage | None:
    """What the failed attempts the server billed had used (None when there were none): the
    usage a broken stream reported, else the prompt and what had streamed by then (a lower
    bound, ``source`` "estimate")."""
    if not outcome.charged:
        return None
    prompt = completion = 0
    for progress in outcome.charged:
        usage = progress.usage or estimated_usage(count_text, prompt_tokens, "".join(progress.text))
        prompt += usage.prompt_tokens or 0
        completion += usage.completion_tokens or 0
    return TokenUsage(prompt, completion, prompt + completion, None, None, "estimate")


def estimated_usage(
    count_text: Callable[[str], int], prompt: int | None, answer: str
) -> TokenUsage:
    """Usage counted locally, for a server that reported none (``source`` says so)."""
    completion = count_text(answer) if answer else 0
    return TokenUsage(prompt, completion, (prompt or 0) + completion, None, None, "estimate")


def split_usage(usage: TokenUsage, weights: list[int]) -> list[TokenUsage]:
    """One call's usage shared among its ``n`` choices, so that each figure sums to the call's.

    The prompt was sent (and billed) once: its tokens, cached ones included, go to the first
    choice. Completion and reasoning tokens are shared in proportion to ``weights`` (each
    choice's own token count), as whole numbers by the largest remainder.
    """
    if len(weights) <= 1:
        return [usage]
    source = "api_split" if usage.source == "api" else usage.source
    shares = [TokenUsage(source=source) for _ in weights]
    shares[0].prompt_tokens = usage.prompt_tokens
    shares[0].cached_tokens = usage.cached_tokens
    for i in range(1, len(shares)):
        shares[i].prompt_tokens = 0 if usage.prompt_tokens is not None else None
        shares[i].cached_tokens = 0 if usage.cached_tokens is not None else None
    for name in ("completion_tokens", "reasoning_tokens"):
        total = getattr(usage, name)
        parts = _apportion(total, weights) if total is not None else [None] * len(weights)
        for share, part in zip(shares, parts, strict=True):
            setattr(share, name, part)
    for share in shares:
        if share.prompt_tokens is not None and share.completion_tokens is not None:
            share.total_tokens = share.prompt_tokens + share.completion_tokens
    return shares


def _apportion(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (equally when they are all 0), summing to it."""
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts
