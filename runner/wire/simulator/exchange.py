"""Responses API answers: the output items a request gets, the Response object in each state,
and the events (and server-sent-event frames) a streamed response is made of."""

from __future__ import annotations

import time
from typing import Any

from runner.wire.simulator.decisions import (
    Again,
    arguments,
    builtin_calls,
    chosen_tool,
    citations,
    function_tools,
    halves,
    json_answer,
    token_limit,
    wants_call,
)
from runner.wire.simulator.dialogue import (
    as_messages,
    conversation_id,
    input_items,
    item_turns,
    latest_results,
    question,
    tool_said,
)
from runner.wire.simulator.errors import dumps
from runner.wire.simulator.persona import Persona
from runner.wire.simulator.usage import response_usage


def sse_event(event: dict[str, Any], sequence: int) -> bytes:
    """An event as a server-sent-event frame: ``event: <type>`` and ``data: <json>``, the JSON
    numbered by ``sequence_number``."""
    data = dumps(event)  # with sequence_number added last
    return f'event: {event["type"]}\ndata: {data[:-1]},"sequence_number":{sequence}}}\n\n'.encode()


class Exchange:
    """One Responses request worked out: the context the model saw (``seen``: instructions as a
    developer message, the context continued, the input items), its output items (built-in
    tool calls and a message, or one function call) and how the response ends.

    ``prior`` is the context the request continues (``previous_response_id`` or its
    conversation), ``inputs`` the request's input items if already read. ``refusal`` makes
    the message refuse with that text; ``calls=False`` answers with text whatever function
    tools are offered; ``again`` says whether the model calls its function once more on the
    results it was given; ``truncate`` = (pieces, reason) ends the message after that many
    pieces, ``incomplete`` for that reason.
    """

    def __init__(
        self,
        persona: Persona,
        body: dict[str, Any],
        prior: list[dict[str, Any]],
        raw: bytes = b"",
        arrival: int = 0,
        *,
        inputs: list[dict[str, Any]] | None = None,
        refusal: str | None = None,
        calls: bool = True,
        again: Again | None = None,
        truncate: tuple[int, str] | None = None,
    ) -> None:
        self.persona = persona
        self.body = body
        self.input = input_items(body.get("input")) if inputs is None else inputs
        self.context = prior + self.input  # what a later response continues from (+ output)
        key = persona.key(raw, self.context, arrival)
        ids = persona.ids
        self.rid = ids.response.format(key=key)
        self.created_at = int(time.time())
        instructions = body.get("instructions")
        lead = []
        if isinstance(instructions, str) and instructions:
            lead = input_items([{"role": "developer", "content": instructions}])
        self.seen = lead + self.context
        self.input_tokens = persona.count_messages(as_messages(self.seen))
        self.status = "completed"
        self.reason: str | None = None  # incomplete_details.reason
        self.output: list[dict[str, Any]] = []
        self.pieces: list[str] = []  # what the deltas of the last output item carry
        self.output_tokens = 0

        turns = item_turns(self.context)
        asked = question(turns)
        tools: list[Any] = body["tools"] if isinstance(body.get("tools"), list) else []
        choice = body.get("tool_choice")
        self.again = False
        if again is not None:
            self.again = again({turn.call_id for turn in latest_results(turns)})
        function = None
        if calls and refusal is None:
            function = chosen_tool(function_tools(tools, nested=False), choice)
        if wants_call(turns, function, self.again):
            assert function is not None
            args = arguments(function, asked)
            self.output.append(
                {
                    "id": ids.function_call.format(key=key, i=0),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": args,
                    "call_id": ids.call.format(key=key, i=0),
                    "name": function["name"],
                }
            )
            self.pieces = halves(args)
            self.output_tokens = persona.count_text(args)
            return

        include: list[Any] = body["include"] if isinstance(body.get("include"), list) else []
        offered = {tool.get("type") for tool in tools if isinstance(tool, dict)}
        if refusal is None and choice != "none":
            self.output += builtin_calls(persona, tools, include, asked, key, len(self.output))
        text_config = body.get("text")
        text_format = text_config.get("format") if isinstance(text_config, dict) else None
        if refusal is not None:
            text = refusal
        else:
            answer = json_answer(text_format, asked)
            text = persona.lead + asked + tool_said(turns) if answer is None else answer
        limit = token_limit(body.get("max_output_tokens"))
        if truncate is not None:
            self.pieces = persona.pieces(text)[: truncate[0]]
            text = "".join(self.pieces)
            self.status, self.reason = "incomplete", truncate[1]
        else:
            cut = None if limit is None else persona.cut(text, limit)
            if cut is not None:
                text, self.status, self.reason = cut, "incomplete", "max_output_tokens"
            self.pieces = persona.pieces(text)
        self.output_tokens = persona.count_text(text)
        if refusal is not None:
            part: dict[str, Any] = {"type": "refusal", "refusal": text}
        else:
            annotations = citations(persona, offered, asked, text) if choice != "none" else []
            part = {"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}
        self.output.append(
            {
                "id": ids.message.format(key=key, i=len(self.output)),
                "type": "message",
                "status": self.status,
                "content": [part],
                "role": "assistant",
            }
        )

    @property
    def call(self) -> dict[str, Any] | None:
        """The function call this response makes, if it makes one."""
        last = self.output[-1]
        return last if last["type"] == "function_call" else None

    def usage(self, output_tokens: int | None = None) -> dict[str, Any]:
        """The usage object, counting ``output_tokens`` (default: the whole output)."""
        counted = self.output_tokens if output_tokens is None else output_tokens
        return response_usage(self.input_tokens, counted)

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The Response object in a given state."""
        body = self.body
        text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
        conversation = conversation_id(body)
        return {
            "id": self.rid,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": bool(body.get("background", False)),
            "completed_at": self.created_at if status == "completed" else None,
            "conversation": {"id": conversation} if conversation else None,
            "error": error,
            "incomplete_details": {"reason": self.reason} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": body.get("model", self.persona.model),
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": body.get("store", True) is not False,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium", **text},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def final(self, usage: dict[str, Any] | None) -> dict[str, Any]:
        """The stream's last event: ``response.completed`` or ``response.incomplete``."""
        return {
            "type": f"response.{self.status}",
            "response": self.response(self.status, self.output, usage),
        }

    def events(self) -> list[dict[str, Any]]:
        """Every event of the stream but the last (see :meth:`final`), without sequence
        numbers."""
        started = self.response("in_progress", [], None)
        return [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
            *self._item_events(),
        ]

    def _item_events(self) -> list[dict[str, Any]]:
        """The events of the output items, each from its ``added`` to its ``done``."""
        events: list[dict[str, Any]] = []
        for index, item in enumerate(self.output):
            at = {"item_id": item["id"], "output_index": index}
            kind = item["type"]
            added = {**item, "status": "in_progress"}
            if kind == "message":
                added["content"] = []
            elif kind == "function_call":
                added["arguments"] = ""
            events.append(
                {"type": "response.output_item.added", "output_index": index, "item": added}
            )
            if kind == "message":
                events += self._message_events(item, {**at, "content_index": 0})
            elif kind == "function_call":
                events += [
                    {"type": "response.function_call_arguments.delta", **at, "delta": piece}
                    for piece in self.pieces
                ]
                events.append(
                    {
                        "type": "response.function_call_arguments.done",
                        **at,
                        "arguments": item["arguments"],
                    }
                )
            events.append(
                {"type": "response.output_item.done", "output_index": index, "item": item}
            )
        return events

    def _message_events(self, item: dict[str, Any], at: dict[str, Any]) -> list[dict[str, Any]]:
        """A message's events between its item's added and done events."""
        part = item["content"][0]
        if part["type"] == "refusal":
            empty: dict[str, Any] = {"type": "refusal", "refusal": ""}
        else:
            empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        events: list[dict[str, Any]] = [
            {"type": "response.content_part.added", **at, "part": empty}
        ]
        if part["type"] == "refusal":
            events += [
                {"type": "response.refusal.delta", **at, "delta": piece} for piece in self.pieces
            ]
            events.append({"type": "response.refusal.done", **at, "refusal": part["refusal"]})
        else:
            events += [
                {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
                for piece in self.pieces
            ]
            events += [
                {
                    "type": "response.output_text.annotation.added",
                    **at,
                    "annotation_index": j,
                    "annotation": annotation,
                }
                for j, annotation in enumerate(part["annotations"])
            ]
            events.append(
                {"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []}
            )
        events.append({"type": "response.content_part.done", **at, "part": part})
        return events

    def stream(self, final: dict[str, Any]) -> bytes:
        """The whole stream, ending with ``final`` (see :meth:`final`)."""
        started = dumps(self.response("in_progress", [], None))  # the same in two events
        frames = [
            f'event: {kind}\ndata: {{"type":"{kind}","response":{started},'
            f'"sequence_number":{i}}}\n\n'
            for i, kind in enumerate(("response.created", "response.in_progress"))
        ]
        events = [*self._item_events(), final]
        return "".join(frames).encode() + b"".join(
            sse_event(event, i) for i, event in enumerate(events, start=2)
        )
