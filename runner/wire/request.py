"""What goes on the wire: one request body for Chat Completions or the Responses API.

The runner keeps a turn as plain chat messages; this module turns them (and the tools, the
response format and the server-side conversation state) into the body each API takes, so
that a job and a ``ChatSession`` send exactly the same request for the same turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runner.base.schema import RESPONSES_PARAMS, SAMPLING_PARAMS, RunConfig

CHAT_PATH = "/chat/completions"
RESPONSES_PATH = "/responses"


@dataclass
class Request:
    """One call: which API, and the body as it is sent (less the streaming flags)."""

    api: str
    body: dict[str, Any]

    @property
    def path(self) -> str:
        return RESPONSES_PATH if self.api == "responses" else CHAT_PATH


@dataclass
class Shape:
    """What every request of a job (or a chat session) has in common."""

    api: str
    model: str
    params: dict[str, Any]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    text_format: dict[str, Any] | None = None  # response_format (chat) / text.format (responses)
    store: bool | None = None

    def request(
        self,
        messages: list[dict[str, Any]],
        previous_response_id: str | None = None,
        conversation: str | None = None,
    ) -> Request:
        """The request for ``messages`` (chat messages, the system message first if any).

        For the Responses API the system message becomes ``instructions`` (sent with every
        request: a previous response's instructions are not carried over) and the rest is the
        ``input``; ``previous_response_id`` or ``conversation`` say where the server keeps the
        earlier turns.
        """
        if self.api != "responses":
            body: dict[str, Any] = {"model": self.model, "messages": messages, **self.params}
            if self.tools:
                body["tools"] = self.tools
                if self.tool_choice is not None:
                    body["tool_choice"] = self.tool_choice
            if self.text_format is not None:
                body["response_format"] = self.text_format
            return Request("chat", body)
        instructions = [m["content"] for m in messages if m.get("role") == "system"]
        body = {"model": self.model}
        if instructions:
            body["instructions"] = "\n\n".join(str(i) for i in instructions)
        body["input"] = [_input_item(m) for m in messages if m.get("role") != "system"]
        for dotted, value in self.params.items():
            _put(body, dotted, value)
        if self.tools:
            body["tools"] = self.tools
            if self.tool_choice is not None:
                body["tool_choice"] = self.tool_choice
        if self.text_format is not None:
            body.setdefault("text", {}).update(self.text_format)
        if self.store is not None:
            body["store"] = self.store
        if previous_response_id is not None:
            body["previous_response_id"] = previous_response_id
        if conversation is not None:
            body["conversation"] = conversation
        return Request("responses", body)


def sampling_params(run: RunConfig) -> dict[str, Any]:
    """The sampling params exactly as they go on the wire (nulls left out, max_tokens renamed)."""
    params: dict[str, Any] = {}
    for name in SAMPLING_PARAMS:
        value = getattr(run.sampling, name)
        if value is None:
            continue
        if name == "max_tokens":
            name = run.model.max_tokens_param
        params[name] = list(value) if name == "stop" else value
    return params


def wire_params(run: RunConfig) -> dict[str, Any]:
    """The sampling params as the model's API names them (dotted for nested Responses keys)."""
    params = sampling_params(run)
    if run.model.api != "responses":
        return params
    by_name = {"max_tokens": run.model.max_tokens_param}
    wire = {}
    for name, dotted in RESPONSES_PARAMS.items():
        value = params.get(by_name.get(name, name))
        if value is not None:
            wire[dotted] = value
    return wire


def tool_messages(
    api: str, text: str, calls: list[dict[str, Any]], outputs: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The messages that carry a round of tool calls and their outputs to the next request.

    ``calls`` are the model's calls as ``{"id", "name", "arguments"}`` (Responses: the output
    items as the server sent them, echoed back); ``outputs`` pair each call id with the text
    the tool returned.
    """
    if api != "responses":
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": text or None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ],
        }
        return [assistant] + [
            {"role": "tool", "tool_call_id": call_id, "content": output}
            for call_id, output in outputs
        ]
    return [dict(c) for c in calls] + [
        {"type": "function_call_output", "call_id": call_id, "output": output}
        for call_id, output in outputs
    ]


def _input_item(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message as a Responses input item (items already in that form pass as they are)."""
    if "role" not in message or message.get("type") not in (None, "message"):
        return message
    return {"role": message["role"], "content": message.get("content") or ""}


def _put(body: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if not rest:
        body[head] = value
        return
    inner = body.setdefault(head, {})
    _put(inner, rest, value)


def request_key(request: Request, sample: int = 0) -> str:
    """The body as canonical JSON, for cache keys; ``sample`` (a repeat) makes its own key."""
    tagged: dict[str, Any] = {"api": request.api, "body": request.body}
    if sample:
        tagged["sample"] = sample
    return json.dumps(
        tagged,
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
