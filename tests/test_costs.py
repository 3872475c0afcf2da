"""The one cost rule: what a call cost when it answered, came from the cache, was retried after
a billed attempt, or never answered; and that no other module prices usage itself."""

from __future__ import annotations

import ast
from pathlib import Path

from runner.base.record import AttemptError, CallError, TokenUsage
from runner.base.schema import Prices
from runner.core.costs import Charge, batch_prices, call_cost
from runner.wire.completion import Choice, Completion, Progress
from runner.wire.gateway import CallOutcome

PRICES = Prices(input=2.0, cached_input=0.5, output=8.0)
PACKAGE = Path(__file__).resolve().parent.parent / "runner"


def words(text: str) -> int:
    return len(text.split())


def answered(cache_hit: bool = False, **extra: object) -> CallOutcome:
    completion = Completion([Choice(0, "Paris")], None, "r1", "m", None, None)
    return CallOutcome(completion, None, 1, cache_hit, 0.1, **extra)  # type: ignore[arg-type]


def test_an_answer_costs_its_usage_at_the_preset_prices() -> None:
    usage = TokenUsage(1000, 300, 1300, 400)
    charge = call_cost(answered(), usage, PRICES, 0, words)
    assert charge == Charge((600 * 2.0 + 400 * 0.5 + 300 * 8.0) / 1_000_000, None, None)


def test_a_cache_hit_costs_nothing_and_keeps_what_the_call_cost() -> None:
    charge = call_cost(answered(cache_hit=True), TokenUsage(1000, 300, 1300), PRICES, 0, words)
    assert charge == Charge(0.0, (1000 * 2.0 + 300 * 8.0) / 1_000_000, None)


def test_a_billed_attempt_adds_what_it_had_streamed() -> None:
    broken = Progress(True, ["the answer was cut"])  # 4 words streamed, no usage reported
    outcome = answered(
        attempt_errors=[AttemptError(1, "ConnectionError", None, True)], charged=[broken]
    )
    charge = call_cost(outcome, TokenUsage(100, 10, 110), PRICES, 100, words)
    retried = TokenUsage(100, 4, 104, None, None, "estimate")
    assert charge.retried == retried
    assert charge.cost_usd == (100 * 2.0 + 10 * 8.0) / 1e6 + (100 * 2.0 + 4 * 8.0) / 1e6
    # the other choices of the call do not carry the retry
    other = call_cost(outcome, TokenUsage(0, 10, 10), PRICES, 100, words, with_retries=False)
    assert other == Charge(10 * 8.0 / 1e6, None, None)


def test_a_call_that_never_answered() -> None:
    refused = AttemptError(1, "RateLimitError", 429, False)
    broken = AttemptError(1, "ConnectionError", None, None)
    error = CallError("RateLimitError", "429")
    nothing = CallOutcome(None, error, 1, False, 0.1, [refused])
    assert call_cost(nothing, None, PRICES, 50, words) == Charge(0.0)
    maybe = CallOutcome(None, error, 1, False, 0.1, [broken])
    assert call_cost(maybe, None, PRICES, 50, words) == Charge(None)  # may have been billed
    assert call_cost(maybe, None, PRICES, 50, words, with_retries=False) == Charge(0.0)
    streamed = CallOutcome(None, error, 2, False, 0.1, [broken], [Progress(True, ["a b"])])
    retried = TokenUsage(50, 2, 52, None, None, "estimate")
    assert call_cost(streamed, None, PRICES, 50, words) == Charge(
        (50 * 2.0 + 2 * 8.0) / 1e6, None, retried
    )


def test_an_unknown_price_is_an_unknown_cost() -> None:
    charge = call_cost(answered(), TokenUsage(10, 5, 15), Prices(input=1.0), 0, words)
    assert charge == Charge(None)


def test_batch_prices() -> None:
    prices = Prices(input=2.0, cached_input=0.5, output=8.0, input_batch=1.0, output_batch=4.0)
    assert batch_prices(prices) == Prices(input=1.0, cached_input=0.25, output=4.0)
    assert batch_prices(PRICES) == Prices(input=None, cached_input=0.25, output=None)


def test_usage_is_priced_in_the_cost_module_only() -> None:
    """Every figure of money comes from one rule: nothing else calls the price formula."""
    callers = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "cost_usd":
                callers.add(path.relative_to(PACKAGE).as_posix())
    assert callers == {"core/costs.py", "core/estimate.py"}  # the dry run's worst case
