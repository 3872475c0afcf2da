import pytest

from runner.base.errors import BudgetError
from runner.core.history import build_prompt
from runner.wire.tokens import TokenCounter

counter = TokenCounter("o200k_base")
SYSTEM = "You are terse."


def exchanges(n: int) -> list:
    return [
        (
            {"role": "user", "content": f"question {i} " + "word " * 20},
            {"role": "assistant", "content": f"answer {i} " + "word " * 20},
        )
        for i in range(n)
    ]


def cost(exchange) -> int:
    return counter.count_message(exchange[0]) + counter.count_message(exchange[1])


def test_everything_fits_nothing_is_dropped() -> None:
    prompt = build_prompt(SYSTEM, exchanges(3), "next?", counter, 10_000, 100)
    assert [m["role"] for m in prompt.messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert prompt.dropped_messages == 0
    assert prompt.prompt_tokens == counter.count_messages(prompt.messages)


def test_oldest_exchanges_go_first_and_the_system_message_stays() -> None:
    history = exchanges(5)
    base = counter.count_messages(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "next?"}]
    )
    budget = base + 2 * cost(history[0]) + 10 + 50  # room for two exchanges, 50 reserved
    prompt = build_prompt(SYSTEM, history, "next?", counter, budget, 50)
    assert prompt.messages[0] == {"role": "system", "content": SYSTEM}
    assert prompt.messages[1]["content"].startswith("question 3")
    assert prompt.messages[3]["content"].startswith("question 4")
    assert prompt.messages[-1] == {"role": "user", "content": "next?"}
    assert prompt.dropped_messages == 6
    assert prompt.prompt_tokens + 50 <= budget


def test_max_history_caps_the_exchanges_kept() -> None:
    prompt = build_prompt(SYSTEM, exchanges(5), "next?", counter, 100_000, 100, max_history=1)
    assert len(prompt.messages) == 4
    assert prompt.messages[1]["content"].startswith("question 4")
    assert prompt.dropped_messages == 8
    none = build_prompt(SYSTEM, exchanges(5), "next?", counter, 100_000, 100, max_history=0)
    assert len(none.messages) == 2 and none.dropped_messages == 10


def test_a_question_too_large_for_the_budget_is_an_error() -> None:
    with pytest.raises(BudgetError, match="budget of 100"):
        build_prompt(SYSTEM, [], "word " * 200, counter, 100, 20)


def test_no_system_message_is_sent_when_it_is_empty() -> None:
    prompt = build_prompt("", [], "hi", counter, 1000, 10)
    assert prompt.messages == [{"role": "user", "content": "hi"}]


def test_trimming_counts_each_message_once() -> None:
    local = TokenCounter("o200k_base")
    seen: list[str] = []
    original = local.count_message

    def counting(message):
        seen.append(message["content"])
        return original(message)

    local.count_message = counting
    build_prompt(SYSTEM, exchanges(50), "next?", local, 400, 50)
    assert len(seen) == len(set(seen))  # linear: no message counted twice
