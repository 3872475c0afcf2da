"""The Chat Completions API on the wire: one streamed completion read chunk by chunk (each
choice, its tool calls, the usage and timing), and a whole ``chat.completion`` object (a Batch
API answer) read into the same ``Completion``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runner.base.record import TokenUsage
from runner.wire.completion import (
    Choice,
    Completion,
    IncompleteStreamError,
    MalformedChunkError,
    Progress,
    ToolCall,
    json_object,
    timeout_for,
    whole_number,
)

if TYPE_CHECKING:  # the SDK is imported with the first client (runner.wire.gateway), not before
    from openai import AsyncOpenAI


async def stream_completion(
    client: AsyncOpenAI,
    body: dict[str, Any],
    timeout_s: float,
    on_delta: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> Completion:
    """Stream one chat completion; the last usage seen wins (some servers repeat it per chunk).

    Choices are kept apart by their ``index`` (``n`` > 1 interleaves them); ``on_delta`` is
    called with each piece of the first choice as it arrives (live display), and
    ``progress`` (if given) is filled as the stream goes, for an attempt that fails.
    Raises whatever the SDK or the transport raises, ``MalformedChunkError`` for a chunk that
    is JSON but not a chat completion chunk, and ``IncompleteStreamError`` for a stream that
    ends with neither a ``finish_reason`` nor ``[DONE]``; ``runner.wire.retry`` decides what is
    retried.

    The request goes through the client's ``post`` (its auth, base URL, timeouts, error
    classes and server-sent-event decoding) with the body as the runner already holds it, and
    each chunk is read as the JSON object it is. The typed ``chat.completions.create`` would
    rebuild the request params and a model object for every chunk, about half of all the
    client-side CPU time of a call, for the few fields read here.
    """
    from runner.wire.sse import DoneStream

    started = time.perf_counter()
    progress = progress if progress is not None else Progress()
    stream = await client.post(
        "/chat/completions",
        body={**body, "stream": True, "stream_options": {"include_usage": True}},
        cast_to=object,
        stream=True,
        stream_cls=DoneStream,
        options={"timeout": timeout_for(timeout_s)},
    )
    assert isinstance(stream, DoneStream)
    progress.responded = True
    choices: dict[int, Choice] = {}
    calls: dict[tuple[int, int], dict[str, str]] = {}  # (choice, call index) -> pieces so far
    ttft: float | None = None
    rid = served = fingerprint = None
    async with stream:
        async for raw in stream:
            chunk = json_object(raw, "stream chunk")
            rid = rid or chunk.get("id")
            served = served or chunk.get("model")
            fingerprint = fingerprint or chunk.get("system_fingerprint")
            if chunk.get("usage") is not None:
                progress.usage = chat_usage(json_object(chunk["usage"], "usage"))
            raw_choices = chunk.get("choices") or []
            if not isinstance(raw_choices, list):
                raise MalformedChunkError(f"choices is not a list: {raw_choices!r:.200}")
            for raw_choice in raw_choices:
                item = json_object(raw_choice, "choice")
                index = item.get("index") or 0
                if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                    raise MalformedChunkError(f"choice index is not a number: {index!r:.200}")
                choice = choices.get(index)
                if choice is None:
                    choice = choices[index] = Choice(index)
                delta = json_object(item.get("delta") or {}, "delta")
                text = _text(delta, "content")
                refusal = _text(delta, "refusal")
                if (text or refusal) and ttft is None:
                    ttft = time.perf_counter() - started
                if text:
                    choice.text += text
                    progress.text.append(text)
                    if index == 0 and on_delta is not None:
                        on_delta(text)
                if refusal:
                    choice.refusal = (choice.refusal or "") + refusal
                    progress.text.append(refusal)
                for piece in _tool_call_pieces(delta):
                    call = calls.setdefault((index, piece["index"]), {"id": "", "name": ""})
                    call["id"] = call["id"] or piece["id"]
                    call["name"] += piece["name"]
                    call["arguments"] = call.get("arguments", "") + piece["arguments"]
                    progress.text.append(piece["name"] + piece["arguments"])
                if item.get("finish_reason"):
                    choice.finish_reason = item["finish_reason"]
    for (index, _), call in sorted(calls.items()):
        choices[index].tool_calls.append(
            ToolCall(call["id"], call["name"], call.get("arguments") or "")
        )
    finished = bool(choices) and all(c.finish_reason for c in choices.values())
    if not finished and not stream.done:
        got = ", ".join(f"{len(c.text)} characters of choice {c.index}" for c in choices.values())
        raise IncompleteStreamError(
            "the stream ended without a finish_reason or [DONE] (the connection closed "
            f"mid-answer after {got or 'no content'})"
        )
    return Completion(
        choices=[choices[i] for i in sorted(choices)],
        usage=progress.usage,
        response_id=rid,
        served_model=served,
        system_fingerprint=fingerprint,
        ttft_s=ttft,
        finished=finished,
    )


def _tool_call_pieces(delta: dict[str, Any]) -> list[dict[str, Any]]:
    """The pieces of tool calls in one delta: each names its call by ``index``; the first
    piece of a call carries its ``id`` and name, later ones more of its arguments."""
    raw = delta.get("tool_calls") or []
    if not isinstance(raw, list):
        raise MalformedChunkError(f"delta.tool_calls is not a list: {raw!r:.200}")
    pieces = []
    for position, item in enumerate(raw):
        call = json_object(item, "tool call")
        function = json_object(call.get("function") or {}, "tool call function")
        index = call.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool):
            raise MalformedChunkError(f"tool call index is not a number: {index!r:.200}")
        pieces.append(
            {
                "index": index,
                "id": str(call.get("id") or ""),
                "name": _text(function, "name") or "",
                "arguments": _text(function, "arguments") or "",
            }
        )
    return pieces


def _text(delta: dict[str, Any], key: str) -> str | None:
    value = delta.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedChunkError(f"delta.{key} is not text: {value!r:.200}")
    return value


def chat_usage(raw: dict[str, Any]) -> TokenUsage:
    """A Chat Completions ``usage`` object as the record's usage."""
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=whole_number(raw, "prompt_tokens"),
        completion_tokens=whole_number(raw, "completion_tokens"),
        total_tokens=whole_number(raw, "total_tokens"),
        cached_tokens=whole_number(prompt_details, "cached_tokens"),
        reasoning_tokens=whole_number(completion_details, "reasoning_tokens"),
        source="api",
    )


def parse_chat_completion(body: Any) -> Completion:
    """A ``chat.completion`` object (not streamed) as a ``Completion``: each choice's text,
    refusal, tool calls and finish_reason, and the usage. ``MalformedChunkError`` for a body
    of the wrong shape."""
    raw = json_object(body, "chat.completion")
    choices = raw.get("choices")
    if not isinstance(choices, list):
        raise MalformedChunkError(f"choices is not a list: {choices!r:.200}")
    parsed: list[Choice] = []
    for item in choices:
        item = json_object(item, "choice")
        message = json_object(item.get("message") or {}, "message")
        index = item.get("index") or 0
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise MalformedChunkError(f"choice index is not a number: {index!r:.200}")
        content, refusal = message.get("content"), message.get("refusal")
        for name, value in (("content", content), ("refusal", refusal)):
            if value is not None and not isinstance(value, str):
                raise MalformedChunkError(f"message.{name} is not text: {value!r:.200}")
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise MalformedChunkError(f"message.tool_calls is not a list: {calls!r:.200}")
        choice = Choice(index, content or "", refusal or None, item.get("finish_reason"))
        for call in calls:
            call = json_object(call, "tool call")
            function = json_object(call.get("function") or {}, "tool call function")
            choice.tool_calls.append(
                ToolCall(
                    str(call.get("id") or ""),
                    str(function.get("name") or ""),
                    str(function.get("arguments") or ""),
                )
            )
        parsed.append(choice)
    usage = raw.get("usage")
    return Completion(
        choices=sorted(parsed, key=lambda c: c.index),
        usage=None if usage is None else chat_usage(json_object(usage, "usage")),
        response_id=raw.get("id"),
        served_model=raw.get("model"),
        system_fingerprint=raw.get("system_fingerprint"),
        ttft_s=None,
        finished=bool(parsed) and all(c.finish_reason for c in parsed),
    )
