"""One turn of a conversation: a call, the tools it asks for, and a call again.

A job and a ``ChatSession`` ask every turn through ``TurnRunner``, so both send the same
requests, run tools the same way and keep the server-side state the same way. Each call of
the loop is a ``Step``, handed to ``on_step`` the moment it completes (a job writes its
record then), before any tool it asks for runs. The calls go through a ``Transport``: the
``Gateway`` (streamed), or a batch job's rounds, which the code here does not tell apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runner.base.errors import BudgetError
from runner.base.record import CallError
from runner.base.schema import ModelPreset, RetryPolicy, RunConfig
from runner.core.history import Exchange, Prompt, build_prompt
from runner.core.structured import format_spec, load_schema
from runner.core.tools import Toolbox, ToolResult
from runner.wire.gateway import CallOutcome
from runner.wire.request import Request, Shape, tool_messages, wire_params
from runner.wire.tokens import TokenCounter


class Transport(Protocol):
    """What asks a call: the ``Gateway``, or the rounds of a batch job (``runner.core.batch``).

    ``call_id`` names the call (the record id of its first choice) for a transport that
    keeps calls apart by name; ``complete`` never raises for a failed call.
    """

    async def complete(
        self,
        preset: ModelPreset,
        request: Request,
        estimated_tokens: int,
        retry: RetryPolicy,
        timeout_s: float,
        on_delta: Callable[[str | None], None] | None = None,
        use_cache: bool = True,
        sample: int = 0,
        call_id: str | None = None,
    ) -> CallOutcome: ...

    async def create_conversation(
        self, preset: ModelPreset, retry: RetryPolicy, timeout_s: float
    ) -> str | CallError: ...


def shape_for(
    run: RunConfig, trees: Sequence[Path] | None = None
) -> tuple[Shape, Toolbox, dict[str, Any] | None]:
    """What every request of ``run`` shares, its tools (resolved: ``ConfigError`` for a tool
    that cannot be imported) and its JSON schema (read from its file, found in ``trees``)."""
    toolbox = Toolbox(run.tools)
    schema = load_schema(run.response_format, trees)
    shape = Shape(
        api=run.model.api,
        model=run.model.name,
        params=wire_params(run),
        tools=toolbox.specs(run.model.api),
        tool_choice=toolbox.choice(run.model.api),
        text_format=format_spec(run.response_format, schema, run.model.api),
        store=True if run.conversation_state != "client" else None,
    )
    return shape, toolbox, schema


@dataclass
class ConversationState:
    """Where a conversation's earlier turns are: sent by the runner (``client``), or kept by
    the server, continued by the last response's id or by a Conversation's id."""

    mode: str = "client"
    previous_response_id: str | None = None
    conversation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "previous_response_id": self.previous_response_id,
            "conversation": self.conversation,
        }


@dataclass
class Step:
    """One call of a turn, and what it carried back to the model (``tool_results``)."""

    number: int
    request: Request
    messages: list[dict[str, Any]]
    estimate: int
    dropped: int
    outcome: CallOutcome
    state: ConversationState
    tool_results: list[ToolResult] = field(default_factory=list)
    error: CallError | None = None  # a failure of the turn on this step (too many rounds)

    @property
    def calls(self) -> list[Any]:
        """The tools the model asked for in this step's answer."""
        completion = self.outcome.completion
        if completion is None or not completion.choices:
            return []
        return list(completion.choices[0].tool_calls)


@dataclass
class TurnResult:
    """Every step of a turn; the last one holds the answer (or the failure)."""

    steps: list[Step]
    tool_results: list[ToolResult]
    error: CallError | None = None  # the turn could not be asked at all (budget, conversation)

    @property
    def last(self) -> Step | None:
        return self.steps[-1] if self.steps else None


class TurnRunner:
    """Asks turns for one job or chat session: its settings, tools, and token budget."""

    def __init__(
        self,
        transport: Transport,
        run: RunConfig,
        shape: Shape,
        toolbox: Toolbox,
        counter: TokenCounter,
        budget: int,
        reserved: int,
    ) -> None:
        self.transport, self.run, self.shape, self.toolbox = transport, run, shape, toolbox
        self.counter, self.budget, self.reserved = counter, budget, reserved

    @property
    def server_state(self) -> bool:
        return self.run.conversation_state != "client"

    async def ask(
        self,
        history: Sequence[Exchange],
        question: str,
        state: ConversationState,
        on_step: Callable[[Step], Awaitable[None] | None] | None = None,
        on_delta: Callable[[str | None], None] | None = None,
        first_step: int = 0,
        sample: int = 0,
        call_ids: Callable[[int], str] | None = None,
    ) -> TurnResult:
        """Ask ``question`` after ``history`` (client state) or after what the server keeps.

        ``state`` is updated as the server answers (the last response's id); ``call_ids`` names
        each step's call for the transport. Never raises for API failures: a failed step is
        the last one, its outcome carries the error.
        """
        run = self.run
        try:
            prompt = build_prompt(
                run.system.message or None,
                [] if self.server_state else history,
                question,
                self.counter,
                self.budget,
                self.reserved,
                run.max_history,
            )
        except BudgetError as exc:  # the question does not fit even alone
            return TurnResult([], [], CallError("BudgetError", str(exc)))
        messages: list[dict[str, Any]] = list(prompt.messages)
        head = [m for m in messages if m.get("role") == "system"]
        results: list[ToolResult] = []
        all_results: list[ToolResult] = []
        steps: list[Step] = []
        number = first_step
        while True:
            if state.mode == "conversation" and state.conversation is None:
                made = await self.transport.create_conversation(run.model, run.retry, run.timeout_s)
                if isinstance(made, CallError):
                    return TurnResult(steps, all_results, made)
                state.conversation = made
            request = self.shape.request(
                messages,
                previous_response_id=state.previous_response_id
                if state.mode == "previous_response_id"
                else None,
                conversation=state.conversation if state.mode == "conversation" else None,
            )
            estimate = self._estimate(messages, prompt if number == first_step else None)
            outcome = await self.transport.complete(
                run.model,
                request,
                estimate + self.reserved,
                run.retry,
                run.timeout_s,
                on_delta,
                use_cache=not self.server_state,
                sample=sample,
                call_id=call_ids(number) if call_ids is not None else None,
            )
            sent_state = ConversationState(
                state.mode, request.body.get("previous_response_id"), state.conversation
            )
            step = Step(
                number,
                request,
                messages,
                estimate,
                prompt.dropped_messages if number == first_step else 0,
                outcome,
                sent_state,
                results,
            )
            steps.append(step)
            completion = outcome.completion
            calls = step.calls
            if calls and number - first_step >= run.tools.max_rounds:
                step.error = CallError(
                    "ToolRounds",
                    f"the model still called tools after tools.max_rounds={run.tools.max_rounds} "
                    "rounds: raise tools.max_rounds, or change the prompt or tools",
                )
            if completion is not None and state.mode == "previous_response_id":
                state.previous_response_id = completion.response_id
            await _maybe_await(on_step(step) if on_step is not None else None)
            if completion is None or not calls or step.error is not None:
                return TurnResult(steps, all_results)
            if completion.choices[0].error() is not None:
                return TurnResult(steps, all_results)
            results = list(await asyncio.gather(*(self.toolbox.run(c) for c in calls)))
            all_results += results
            outputs = [(r.call.id, r.output) for r in results]
            if self.shape.api == "responses":
                if state.mode == "client":  # echo the output (function calls, reasoning) back
                    messages = messages + tool_messages("responses", "", completion.output, outputs)
                else:  # the server has the calls: send what the tools said (and instructions)
                    messages = head + tool_messages("responses", "", [], outputs)
            else:
                calls_sent = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
                messages = messages + tool_messages(
                    "chat", completion.choices[0].text, calls_sent, outputs
                )
            number += 1

    def _estimate(self, messages: list[dict[str, Any]], prompt: Prompt | None) -> int:
        if prompt is not None:
            return prompt.prompt_tokens
        return self.counter.count_messages(messages)


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value
