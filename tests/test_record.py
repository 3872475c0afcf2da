"""The record's money and token figures: one call's usage shared among its choices, costs."""

from __future__ import annotations

import pytest

from runner.base.record import TokenUsage
from runner.base.schema import Prices
from runner.core.costs import cost_usd, split_usage


def test_one_choice_keeps_the_calls_usage() -> None:
    usage = TokenUsage(10, 7, 17, 4, 3)
    assert split_usage(usage, [5]) == [usage]


def test_shares_sum_to_the_calls_figures() -> None:
    shares = split_usage(TokenUsage(10, 7, 17, 4, 3), [3, 1, 0])
    assert shares == [
        TokenUsage(10, 5, 15, 4, 2, "api_split"),  # the prompt was sent once: the first holds it
        TokenUsage(0, 2, 2, 0, 1, "api_split"),  # 7 x 1/4 = 1.75 rounds up by the largest rest
        TokenUsage(0, 0, 0, 0, 0, "api_split"),
    ]


def test_no_weights_share_equally_and_unknowns_stay_unknown() -> None:
    shares = split_usage(TokenUsage(9, 5, 14, None, None, "estimate"), [0, 0])
    assert shares == [
        TokenUsage(9, 3, 12, None, None, "estimate"),
        TokenUsage(0, 2, 2, None, None, "estimate"),
    ]


def test_the_shares_cost_what_the_call_cost() -> None:
    prices = Prices(input=2.0, cached_input=0.5, output=8.0)
    usage = TokenUsage(1000, 301, 1301, 400, None)
    shares = split_usage(usage, [100, 200, 1])
    total = sum(c for c in (cost_usd(s, prices) for s in shares) if c is not None)
    assert cost_usd(usage, prices) == (600 * 2.0 + 400 * 0.5 + 301 * 8.0) / 1_000_000
    assert total == pytest.approx(cost_usd(usage, prices), rel=1e-12)
