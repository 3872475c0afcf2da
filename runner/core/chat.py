"""The notebook chat's mechanics: a conversation with one model that streams each answer as it
arrives (``Chat``; ``runner.cli.chat.ChatSession`` composes its settings from presets).

A session keeps the exchanges, trims them to the token budget with the engine's rules
(``runner.core.history.build_prompt``) and sends each question through the same ``Gateway`` as
an experiment (retries and all, no response cache). In Jupyter the answer is live Markdown
in the cell's output; in a terminal or a script it is printed as it streams. Either way a
footer reports the turn's tokens, cost and time.

Notebooks already run an event loop in the main thread, so the calls run on a private loop
in a background thread; the streamed pieces come back over a queue and the display is
updated from the calling thread. IPython is imported only when a kernel is detected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from omegaconf import DictConfig

from runner.base.errors import ConfigError
from runner.base.record import CallError, TokenUsage
from runner.base.schema import (
    ModelPreset,
    Prices,
    QuestionSet,
    RetryPolicy,
    RunConfig,
    SamplingPreset,
    SystemPreset,
)
from runner.core.costs import call_cost, estimated_usage
from runner.core.display import NoView, View, make_view
from runner.core.history import Exchange, Message, exchange, token_budget
from runner.core.turn import ConversationState, Step, TurnResult, TurnRunner, shape_for
from runner.core.validation import validate
from runner.wire.gateway import Gateway, api_key_for
from runner.wire.tokens import TokenCounter, encoding_for, get_counter

SAVE_FORMAT = "runner.chat/1"


@dataclass
class ChatTurn:
    """One question and what came back: the answer (None on error), tokens, cost and time.

    ``messages`` is exactly what was sent, after trimming; ``dropped_messages`` counts the
    earlier messages trimmed to fit the budget or ``max_history``. A turn with an ``error``
    (the question did not fit, or the call failed after its retries) is not part of the
    conversation the next question sees.
    """

    question: str
    answer: str | None
    usage: TokenUsage
    estimated_prompt_tokens: int | None
    dropped_messages: int
    cost_usd: float | None
    latency_s: float | None
    error: CallError | None = None
    attempts: int = 0
    finish_reason: str | None = None
    messages: list[Message] = field(default_factory=list)
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    response_id: str | None = None
    calls: int = 1

    @property
    def footer(self) -> str:
        """One line about the turn: ``prompt 34 · completion 12 tokens · $0.000012 · 0.8 s``,
        then retries and trimmed messages; or the error."""
        parts: list[str] = []
        if self.error is not None:
            status = f" ({self.error.status})" if self.error.status else ""
            parts.append(f"error: {self.error.type}{status}: {self.error.message}")
        else:
            approx = "~" if self.usage.source == "estimate" else ""
            parts.append(
                f"prompt {approx}{_count(self.usage.prompt_tokens)} · "
                f"completion {approx}{_count(self.usage.completion_tokens)} tokens"
            )
            parts.append("cost unknown" if self.cost_usd is None else f"${self.cost_usd:.6f}")
        if self.calls > 1:
            parts.append(f"{self.calls} calls (tool rounds)")
        if self.attempts > max(self.calls, 1):
            parts.append(f"{self.attempts} attempts")
        if self.latency_s is not None:
            seconds = self.latency_s
            parts.append(f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s")
        if self.dropped_messages:
            plural = "s" if self.dropped_messages != 1 else ""
            parts.append(f"{self.dropped_messages} earlier message{plural} trimmed")
        return " · ".join(parts)

    def __repr__(self) -> str:
        """``<ChatTurn 'What is 12 times 7?' -> '84' · 34+12 tok · $0.000012 · 0.80 s>``:
        question and answer cut to 40 characters, the error type in place of a failed answer."""

        def clip(text: str, limit: int = 40) -> str:
            text = " ".join(text.split())
            return repr(text if len(text) <= limit else text[: limit - 1].rstrip() + "…")

        outcome = self.error.type if self.error is not None else clip(self.answer or "")
        parts = [f"{clip(self.question)} -> {outcome}"]
        if self.usage.prompt_tokens is not None or self.usage.completion_tokens is not None:
            parts.append(
                f"{_count(self.usage.prompt_tokens)}+{_count(self.usage.completion_tokens)} tok"
            )
        if self.cost_usd is not None:
            parts.append(f"${self.cost_usd:.6f}")
        if self.latency_s is not None:  # as the footer writes it
            seconds = self.latency_s
            parts.append(f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s")
        return f"<ChatTurn {' · '.join(parts)}>"

    def to_dict(self) -> dict[str, Any]:
        """The turn as plain JSON types (as ``ChatSession.save`` writes it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatTurn:
        """The inverse of ``to_dict``."""
        data = dict(data)
        data["usage"] = TokenUsage(**data.get("usage") or {})
        error = data.get("error")
        data["error"] = None if error is None else CallError(**error)
        return cls(**data)


class Chat:
    """A conversation with one model preset and one system message, streamed live: the
    mechanics of ``ChatSession`` (``runner.cli.chat``), which composes its settings from
    presets by name. Built from validated settings with ``from_config`` or ``load``.

    The settings are validated once, as the session starts: sampling params the model
    rejects raise ``ConfigError``, and a remote model whose API key variable is unset raises
    ``CredentialsError``. Close the session (``close()`` or a ``with`` block) to stop its
    event loop thread and HTTP clients.
    """

    @classmethod
    def from_config(cls, cfg: DictConfig | RunConfig) -> Self:
        """A session from a composed config (``runner.cli.experiment.compose([...])``) or a
        ``RunConfig``: its model, system message, sampling, history, budget, retry and
        timeout settings (the question set is not used)."""
        session = cls.__new__(cls)
        session._start(validate(cfg))
        return session

    def _start(self, run: RunConfig) -> None:
        run = validate(run)
        budget, reserved = token_budget(run)
        api_key_for(run.model)  # CredentialsError now, not at the first question
        self._run = run
        shape, toolbox, _ = shape_for(run)
        self._params = shape.params
        self._budget = budget
        self._reserved = reserved
        self._counter: TokenCounter = get_counter(encoding_for(run.model.name, run.model.encoding))
        self._state = ConversationState(run.conversation_state)
        self._exchanges: list[Exchange] = []
        self._turns: list[ChatTurn] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="runner-chat-loop", daemon=True
        )
        self._thread.start()
        # The gateway's semaphore and HTTP clients belong to the loop that uses them.
        self._gateway: Gateway = asyncio.run_coroutine_threadsafe(
            _make_gateway(), self._loop
        ).result()
        self._runner = TurnRunner(
            self._gateway, run, shape, toolbox, self._counter, budget, reserved
        )
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._thread, self._gateway)

    # ------------------------------------------------------------------ the conversation

    def ask(self, question: str, *, show: bool = True) -> ChatTurn:
        """Ask the next question with the conversation so far; stream and return the answer.

        With ``show`` (the default) the answer appears as it streams (live Markdown in
        Jupyter, plain text on stdout elsewhere), followed by a footer with the turn's
        tokens, cost and time. Never raises for a question that does not fit the budget or
        an API failure: the returned turn carries the ``error`` and is left out of the
        history.
        """
        with self._lock:
            if self.closed:
                raise RuntimeError("this ChatSession is closed: start a new one")
            view = make_view() if show else NoView()
            turn = self._ask(question, view)
            view.finish(turn.answer, turn.footer)
            self._turns.append(turn)
            if turn.error is None and turn.answer is not None:
                self._exchanges.append(exchange(question, turn.answer))
            return turn

    def _ask(self, question: str, view: View) -> ChatTurn:
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()

        def on_delta(piece: str | None) -> None:  # runs in the loop thread
            pieces.put(("reset", None) if piece is None else ("piece", piece))

        def on_step(step: Step) -> None:
            for call in step.calls:
                pieces.put(("piece", f"\n\n→ {call.name}({call.arguments})\n\n"))

        before = dataclasses.replace(self._state)
        future = asyncio.run_coroutine_threadsafe(
            self._runner.ask(self._exchanges, question, self._state, on_step, on_delta),
            self._loop,
        )
        future.add_done_callback(lambda _: pieces.put(("done", None)))
        try:
            while True:
                kind, piece = pieces.get()
                if kind == "done":
                    break
                if kind == "reset":
                    view.restart()
                elif piece:
                    view.piece(piece)
            result = future.result()
        except BaseException:  # KeyboardInterrupt in a cell: stop the call too
            future.cancel()
            raise
        turn = self._turn(question, result)
        if turn.error is not None:  # the server's state goes back to before the failed turn
            self._state = before
        return turn

    def _turn(self, question: str, result: TurnResult) -> ChatTurn:
        """The turn as the session keeps it: the last call's answer, every call's tokens and
        cost together, the tools called."""
        last = result.last
        if last is None:
            return ChatTurn(
                question, None, TokenUsage(source="none"), None, 0, None, None, result.error
            )
        prices = self._run.model.prices
        usage: TokenUsage | None = None
        cost: float | None = 0.0
        for step in result.steps:  # every call of the turn: tool rounds, and billed retries
            completion = step.outcome.completion
            spent = None
            if completion is not None:
                spent = completion.usage or estimated_usage(
                    self._counter.count_text, step.estimate, completion.answer
                )
                usage = spent if usage is None else _add(usage, spent)
            charge = call_cost(step.outcome, spent, prices, step.estimate, self._counter.count_text)
            cost = None if cost is None or charge.cost_usd is None else cost + charge.cost_usd
        completion = last.outcome.completion
        first = completion.choices[0] if completion is not None and completion.choices else None
        error = last.outcome.error or last.error
        if error is None:
            error = (
                first.error()
                if first is not None
                else CallError("MissingChoice", "the server sent no answer")
            )
        return ChatTurn(
            question,
            first.text if first is not None and first.refusal is None else None,
            usage or TokenUsage(source="none"),
            result.steps[0].estimate,
            result.steps[0].dropped,
            cost,
            _round(sum(s.outcome.latency_s or 0.0 for s in result.steps)),
            error,
            sum(s.outcome.attempts for s in result.steps),
            first.finish_reason if first is not None else None,
            [dict(m) for m in result.steps[0].messages],  # copies: not to alias the history
            first.refusal if first is not None else None,
            [r.to_dict() for r in result.tool_results],
            completion.response_id if completion is not None else None,
            len(result.steps),
        )

    def reset(self) -> None:
        """Forget the conversation (history and turns); the settings stay."""
        with self._lock:
            self._exchanges.clear()
            self._turns.clear()

    @property
    def history(self) -> list[Message]:
        """The conversation as chat messages: the system message (if any), then each
        answered question and its answer, untrimmed (each ``ask`` trims a copy)."""
        head = [{"role": "system", "content": self.system_message}] if self.system_message else []
        return head + [dict(m) for exchange in self._exchanges for m in exchange]

    @property
    def turns(self) -> list[ChatTurn]:
        """Every turn asked so far, failed ones included, oldest first."""
        return list(self._turns)

    @property
    def model(self) -> ModelPreset:
        """The model preset the session talks to."""
        return self._run.model

    @property
    def system_message(self) -> str:
        """The system message sent first in every request ("" for none)."""
        return self._run.system.message

    @property
    def params(self) -> dict[str, Any]:
        """The sampling params sent with every request, as they go on the wire."""
        return dict(self._params)

    @property
    def config(self) -> RunConfig:
        """The validated settings the session was built from."""
        return self._run

    # ------------------------------------------------------------------ saving

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the session to a JSON file: settings and every turn (never an API key).

        ``ChatSession.load(path)`` restores it and the conversation continues.
        """
        run = self._run
        data = {
            "format": SAVE_FORMAT,
            "model": dataclasses.asdict(run.model),
            "system": dataclasses.asdict(run.system),
            "sampling": dataclasses.asdict(run.sampling),
            "params": self.params,
            "max_history": run.max_history,
            "token_budget": run.token_budget,
            "timeout_s": run.timeout_s,
            "retry": dataclasses.asdict(run.retry),
            "turns": [turn.to_dict() for turn in self._turns],
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Restore a session written by ``save``; the next ``ask`` sends the earlier exchanges.

        A remote model needs its API key in the environment again (``CredentialsError``).
        """
        source = Path(path)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
            if data.get("format") != SAVE_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, not {SAVE_FORMAT!r}")
            model = dict(data["model"])
            model["prices"] = Prices(**model.get("prices") or {})
            run = RunConfig(
                model=ModelPreset(**model),
                system=SystemPreset(**data["system"]),
                sampling=SamplingPreset(**data["sampling"]),
                questions=QuestionSet(name="chat"),
                max_history=data.get("max_history"),
                token_budget=data.get("token_budget"),
                timeout_s=data.get("timeout_s", RunConfig.timeout_s),
                retry=RetryPolicy(**data.get("retry") or {}),
            )
            turns = [ChatTurn.from_dict(t) for t in data.get("turns", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{source} is not a saved chat session ({type(exc).__name__}: {exc}): "
                "give a file written by ChatSession.save"
            ) from None
        session = cls.from_config(run)
        session._turns = turns
        session._exchanges = [
            exchange(t.question, t.answer)
            for t in turns
            if t.error is None and t.answer is not None
        ]
        return session

    # ------------------------------------------------------------------ closing

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Close the HTTP clients and stop the session's event loop thread (idempotent).

        A question being answered in another thread is finished first.
        """
        with self._lock:
            self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._turns)} turns"
        return (
            f"<{type(self).__name__} model={self._run.model.name!r} "
            f"system={self._run.system.name!r} {state}>"
        )


async def _make_gateway() -> Gateway:
    return Gateway(concurrency=1, cache=None)  # a chat wants a fresh answer every time


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, gateway: Gateway) -> None:
    """Close the gateway's clients, stop the loop and its thread (the session's finalizer)."""
    if loop.is_closed():
        return
    if threading.current_thread() is thread:  # collected inside the loop: just stop it
        loop.call_soon(loop.stop)
        return
    if loop.is_running():

        async def close() -> None:
            await gateway.aclose()
            await loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
    if not loop.is_running():
        loop.close()


# ---------------------------------------------------------------------- helpers


def _add(total: TokenUsage, part: TokenUsage) -> TokenUsage:
    """Two calls' usage together (a figure either leaves unknown stays unknown)."""

    def plus(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else a + b

    return TokenUsage(
        plus(total.prompt_tokens, part.prompt_tokens),
        plus(total.completion_tokens, part.completion_tokens),
        plus(total.total_tokens, part.total_tokens),
        part.cached_tokens
        if total.cached_tokens is None
        else plus(total.cached_tokens, part.cached_tokens),
        part.reasoning_tokens
        if total.reasoning_tokens is None
        else plus(total.reasoning_tokens, part.reasoning_tokens),
        "estimate" if "estimate" in (total.source, part.source) else part.source,
    )


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
