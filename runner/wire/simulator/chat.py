"""Chat Completions answers: the choices a request gets, as a whole completion or as the chunks
of a stream."""

from __future__ import annotations

import time
from typing import Any

from runner.wire.simulator.decisions import (
    Again,
    arguments,
    chosen_tool,
    function_tools,
    halves,
    json_answer,
    stopped,
    token_limit,
    wants_call,
)
from runner.wire.simulator.dialogue import chat_turns, latest_results, question, tool_said
from runner.wire.simulator.errors import dumps, json_bytes, json_text
from runner.wire.simulator.persona import Persona
from runner.wire.simulator.usage import chat_usage

DONE = b"data: [DONE]\n\n"
Step = tuple[dict[str, Any], str | None]  # what a chunk of one choice carries: delta, finish


def choice_count(body: dict[str, Any]) -> int:
    """The ``n`` a request asks for (1 unless a whole number above 1)."""
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def include_usage(body: dict[str, Any]) -> bool:
    """Whether a streamed request asks for a usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


class ChatChoice:
    """One choice: its text (a call's arguments), the pieces it streams in, why it ended, its
    tokens, and ``call`` = (call id, function name) when it calls a function."""

    __slots__ = ("call", "finish_reason", "index", "pieces", "text", "tokens")

    def __init__(
        self,
        index: int,
        text: str,
        pieces: list[str],
        finish_reason: str,
        tokens: int,
        call: tuple[str, str] | None = None,
    ) -> None:
        self.index = index
        self.text = text
        self.pieces = pieces
        self.finish_reason = finish_reason
        self.tokens = tokens
        self.call = call


class ChatAnswer:
    """The answer to one chat completion request: ``n`` choices (answers, a refusal's words,
    or calls of one function), and the completion or stream chunks that carry them.

    ``refusal`` makes every choice refuse with that text; ``n`` overrides the request's;
    ``calls=False`` answers with text whatever tools are offered; ``again`` says whether the
    model calls its function once more on the results it was given.
    """

    def __init__(
        self,
        persona: Persona,
        body: dict[str, Any],
        key: str,
        *,
        refusal: str | None = None,
        n: int | None = None,
        calls: bool = True,
        again: Again | None = None,
    ) -> None:
        self.persona = persona
        self.id = persona.ids.completion.format(key=key)
        self.created = int(time.time())
        self.model = body.get("model", persona.model)
        self._base = (
            f'{{"id":{json_text(self.id)},"object":"chat.completion.chunk","created":{self.created},'
            f'"model":{json_text(self.model)},"system_fingerprint":{json_text(persona.fingerprint)},'
        )
        messages = body.get("messages")
        messages = messages if isinstance(messages, list) else []
        self.prompt_tokens = persona.count_messages(messages)
        self.refusal = refusal is not None
        count = choice_count(body) if n is None else n
        turns = chat_turns(messages)
        self.again = False
        if again is not None:
            self.again = again({turn.call_id for turn in latest_results(turns)})
        tool = None
        if calls and refusal is None:
            offered = function_tools(body.get("tools"), nested=True)
            tool = chosen_tool(offered, body.get("tool_choice"))
        if wants_call(turns, tool, self.again):
            assert tool is not None
            args = arguments(tool, question(turns))
            pieces, tokens = halves(args), persona.count_text(args)
            self.choices = [
                ChatChoice(
                    i,
                    args,
                    pieces,
                    "tool_calls",
                    tokens,
                    (persona.ids.chat_call.format(key=key, i=i), tool["name"]),
                )
                for i in range(count)
            ]
            return
        if refusal is not None:
            text = refusal
        else:
            asked = question(turns)
            answer = json_answer(body.get("response_format"), asked)
            text = persona.lead + asked + tool_said(turns) if answer is None else answer
        limit = body.get("max_completion_tokens")
        limit = token_limit(body.get("max_tokens") if limit is None else limit)
        stop = body.get("stop")
        first = self._choice(0, text, stop, limit)
        self.choices = [first]
        for i in range(1, count):
            if persona.choice_note:
                self.choices.append(self._choice(i, text, stop, limit))
            else:  # every choice says the same
                self.choices.append(
                    ChatChoice(i, first.text, first.pieces, first.finish_reason, first.tokens)
                )

    def _choice(self, i: int, text: str, stop: Any, limit: int | None) -> ChatChoice:
        persona = self.persona
        if i:
            text += persona.choice_note.format(i=i)
        finish = "stop"
        if stop is not None:
            cut = stopped(text, stop)
            text = text if cut is None else cut
        if limit is not None:
            trimmed = persona.cut(text, limit)
            if trimmed is not None:
                text, finish = trimmed, "length"
        return ChatChoice(i, text, persona.pieces(text), finish, persona.count_text(text))

    # ------------------------------------------------------------------ counts

    def usage(self, completion_tokens: int | None = None) -> dict[str, Any]:
        """The usage object, counting ``completion_tokens`` (default: every choice whole)."""
        if completion_tokens is None:
            completion_tokens = sum(choice.tokens for choice in self.choices)
        return chat_usage(self.prompt_tokens, completion_tokens)

    def tokens_of(self, choice: ChatChoice, pieces: int) -> int:
        """The tokens of a choice's first ``pieces`` pieces."""
        if pieces >= len(choice.pieces):
            return choice.tokens
        return self.persona.count_text("".join(choice.pieces[:pieces]))

    # ------------------------------------------------------------------ whole

    def message(self, choice: ChatChoice, text: str) -> dict[str, Any]:
        """A choice's message carrying ``text`` (its content, refusal or call arguments)."""
        if choice.call is not None:
            function = {"name": choice.call[1], "arguments": text}
            tool_call = {"id": choice.call[0], "type": "function", "function": function}
            return {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [tool_call],
                "annotations": [],
            }
        return {
            "role": "assistant",
            "content": None if self.refusal else text,
            "refusal": text if self.refusal else None,
            "annotations": [],
        }

    def choice(self, choice: ChatChoice, text: str, finish: str | None) -> dict[str, Any]:
        """A choice of a whole completion."""
        message = self.message(choice, text)
        return {
            "index": choice.index,
            "message": message,
            "logprobs": None,
            "finish_reason": finish,
        }

    def completion(
        self, choices: list[dict[str, Any]], usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The chat completion object (without ``usage`` when it is None)."""
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.persona.fingerprint,
            "choices": choices,
        }
        if usage is not None:
            payload["usage"] = usage
        return payload

    def whole(self) -> bytes:
        """The completion as JSON, every choice whole and usage given."""
        choices = [self.choice(c, c.text, c.finish_reason) for c in self.choices]
        return json_bytes(self.completion(choices, self.usage()))

    # ------------------------------------------------------------------ streamed

    def role(self, choice: ChatChoice) -> dict[str, Any]:
        """The delta of a choice's first chunk (a call's names the call)."""
        if choice.call is not None:
            function = {"name": choice.call[1], "arguments": ""}
            opening = {"index": 0, "id": choice.call[0], "type": "function", "function": function}
            return {"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}
        if self.refusal:
            return {"role": "assistant", "content": None, "refusal": ""}
        return {"role": "assistant", "content": "", "refusal": None}

    def delta(self, choice: ChatChoice, piece: str) -> dict[str, Any]:
        """The delta of a chunk carrying one piece of a choice."""
        if choice.call is not None:
            return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        return {"refusal": piece} if self.refusal else {"content": piece}

    def finishes_apart(self, choice: ChatChoice) -> bool:
        """Whether a choice's finish_reason comes in an empty delta after its last piece (a
        call's and a refusal's always do)."""
        return choice.call is not None or self.refusal or self.persona.finish_apart

    def steps(self, choice: ChatChoice) -> list[Step]:
        """The chunks a choice streams after its role chunk."""
        if self.finishes_apart(choice):
            steps: list[Step] = [(self.delta(choice, piece), None) for piece in choice.pieces]
            return [*steps, ({}, choice.finish_reason)]
        pieces = choice.pieces or [""]
        last = len(pieces) - 1
        return [
            (self.delta(choice, piece), choice.finish_reason if j == last else None)
            for j, piece in enumerate(pieces)
        ]

    def schedule(self, plans: list[list[Step]]) -> list[tuple[int, ChatChoice, Step | None]]:
        """The chunks of a stream in order, as (round, choice, step; None for the choice's role
        chunk): choice 0's role chunk, then round by round one step of each choice, choice
        i > 0's role chunk coming just before its first step."""
        first = self.choices[0]
        if len(plans) == 1:
            return [(-1, first, None), *((r, first, step) for r, step in enumerate(plans[0]))]
        order: list[tuple[int, ChatChoice, Step | None]] = [(-1, first, None)]
        for r in range(max(1, *(len(plan) for plan in plans))):
            for choice, plan in zip(self.choices, plans, strict=True):
                if r == 0 and choice.index > 0:
                    order.append((0, choice, None))
                if r < len(plan):
                    order.append((r, choice, plan[r]))
        return order

    def frame(self, fields: str) -> bytes:
        """A chunk event whose fields after the common ones (id ... system_fingerprint) are
        the JSON text ``fields``."""
        return f"data: {self._base}{fields}}}\n\n".encode()

    def chunk(
        self,
        index: int,
        delta: dict[str, Any],
        finish: str | None,
        usage: dict[str, Any] | None = None,
        *,
        usage_null: bool = False,
    ) -> bytes:
        """One chunk of choice ``index``; ``usage_null`` writes ``"usage":null`` when no usage
        is given (as OpenAI does when the usage comes in a chunk of its own)."""
        if usage is not None:
            tail = f',"usage":{dumps(usage)}'
        else:
            tail = ',"usage":null' if usage_null else ""
        return self._chunk(index, delta, finish, tail).encode()

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None, tail: str) -> str:
        finished = "null" if finish is None else json_text(finish)
        return (
            f'data: {self._base}"choices":[{{"index":{index},"delta":{_delta_json(delta)},'
            f'"logprobs":null,"finish_reason":{finished}}}]{tail}}}\n\n'
        )

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        """The usage-only chunk that ends a stream that asked for usage."""
        return self.frame(f'"choices":[],"usage":{dumps(usage)}')

    def stream(self, with_usage: bool) -> bytes:
        """The whole stream: every choice's chunks, the usage chunk if asked for, ``[DONE]``."""
        tail = ',"usage":null' if with_usage else ""
        out = []
        for _, choice, step in self.schedule([self.steps(choice) for choice in self.choices]):
            delta, finish = (self.role(choice), None) if step is None else step
            out.append(self._chunk(choice.index, delta, finish, tail))
        if with_usage:
            out.append(f'data: {self._base}"choices":[],"usage":{dumps(self.usage())}}}\n\n')
        return "".join(out).encode() + DONE


def _delta_json(delta: dict[str, Any]) -> str:
    """A delta as JSON; one of a single piece of text quickly."""
    if len(delta) == 1:
        ((key, value),) = delta.items()
        if type(value) is str:
            return f'{{"{key}":{json_text(value)}}}'
    return dumps(delta)
