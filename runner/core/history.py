"""Trimming a conversation's history to the token budget.

The system message is never dropped; the oldest whole exchanges (a question and its answer)
go first until the prompt plus the tokens reserved for the answer fit the budget, and
``max_history`` caps the exchanges kept. Each message is counted once (the counter caches),
and the walk is a single pass from the newest exchange back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runner.base.errors import BudgetError, ConfigError
from runner.base.schema import RunConfig
from runner.wire.tokens import REPLY_PRIMING, TokenCounter

Message = dict[str, str]
Exchange = tuple[Message, Message]


def exchange(question: str, answer: str) -> Exchange:
    """One question and its answer, as the two messages history holds."""
    return ({"role": "user", "content": question}, {"role": "assistant", "content": answer})


def token_budget(run: RunConfig) -> tuple[int, int]:
    """The prompt-plus-answer budget and the tokens reserved for the answer.

    The budget is the context window, or ``token_budget`` when smaller; the reserve is
    ``sampling.max_tokens``, else the model's max output. Raises ``ConfigError`` when the
    reserve leaves no room for a prompt.
    """
    budget = min(run.token_budget or run.model.context_window, run.model.context_window)
    reserved = run.sampling.max_tokens or run.model.max_output_tokens
    if reserved >= budget:
        raise ConfigError(
            f"{reserved} tokens reserved for the answer leave no room for a prompt in a budget of "
            f"{budget}: lower sampling.max_tokens or raise token_budget"
        )
    return budget, reserved


@dataclass
class Prompt:
    """The messages to send, how many earlier messages were trimmed, and their token count."""

    messages: list[Message]
    dropped_messages: int
    prompt_tokens: int


def build_prompt(
    system_message: str | None,
    history: Sequence[Exchange],
    question: str,
    counter: TokenCounter,
    budget: int,
    reserved: int,
    max_history: int | None = None,
) -> Prompt:
    """Fit ``system + history + question`` into ``budget`` tokens, ``reserved`` kept for the answer.

    Raises ``BudgetError`` when the system message and the question alone do not fit.
    """
    head: list[Message] = [{"role": "system", "content": system_message}] if system_message else []
    new: Message = {"role": "user", "content": question}
    used = sum(counter.count_message(m) for m in head) + counter.count_message(new) + REPLY_PRIMING
    available = budget - reserved
    if used > available:
        raise BudgetError(
            f"the question needs {used} prompt tokens with {reserved} reserved for the answer, "
            f"over the budget of {budget}: shorten it, lower sampling.max_tokens or raise "
            "token_budget"
        )
    cap = len(history) if max_history is None else min(max_history, len(history))
    kept: list[Exchange] = []
    for exchange in reversed(history[len(history) - cap :] if cap else ()):
        cost = counter.count_message(exchange[0]) + counter.count_message(exchange[1])
        if used + cost > available:
            break
        kept.append(exchange)
        used += cost
    kept.reverse()
    messages = head + [m for exchange in kept for m in exchange] + [new]
    return Prompt(messages, 2 * (len(history) - len(kept)), used)
