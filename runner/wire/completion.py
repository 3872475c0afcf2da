"""One streamed chat completion: send, read the chunks, keep each choice, the usage and timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx2

from runner.base.record import CallError, TokenUsage
from runner.core.tools import ToolCall

if TYPE_CHECKING:  # the SDK is imported with the first client (runner.wire.gateway), not before
    from openai import AsyncOpenAI


@dataclass
class Choice:
    """One of the ``n`` answers of a completion, as the server streamed it."""

    index: int = 0
    text: str = ""
    refusal: str | None = None
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    def error(self) -> CallError | None:
        """Why this choice is not an answer: the model refused, or a content filter cut it."""
        if self.refusal is not None:
            return CallError("Refusal", f"the model refused: {self.refusal}"[:500])
        if self.finish_reason == "content_filter":
            return CallError(
                "ContentFilter",
                "the server's content filter stopped the answer (finish_reason content_filter); "
                "what came before it is kept as the answer",
            )
        return None


@dataclass
class Completion:
    """What one streamed call returned: its choices (``n`` of them), usage and provenance.

    ``finished`` is true when every choice came with a ``finish_reason``; a stream that said
    ``[DONE]`` without one is kept, but not cached (it may not be the whole answer).
    """

    choices: list[Choice]
    usage: TokenUsage | None
    response_id: str | None
    served_model: str | None
    system_fingerprint: str | None
    ttft_s: float | None
    finished: bool = True
    # Responses API: every output item as the server sent it (function calls to echo back,
    # built-in tool calls with their results, messages with their citations)
    output: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answer(self) -> str:
        """The first choice's text (the one a conversation continues with)."""
        return self.choices[0].text if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def cacheable(self) -> bool:
        """Finished, and every choice is an answer (no refusal, no content filter)."""
        return self.finished and all(c.error() is None for c in self.choices)

    def to_cache(self) -> dict[str, Any]:
        return {
            "choices": [
                {**c.__dict__, "tool_calls": [dict(t.__dict__) for t in c.tool_calls]}
                for c in self.choices
            ],
            "usage": None if self.usage is None else dict(self.usage.__dict__),
            "response_id": self.response_id,
            "served_model": self.served_model,
            "system_fingerprint": self.system_fingerprint,
            "output": self.output,
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> Completion:
        usage = data.get("usage")
        choices = [
            Choice(**{**c, "tool_calls": [ToolCall(**t) for t in c.get("tool_calls") or []]})
            for c in data["choices"]
        ]
        # no call was made: the original call's time to first token says nothing of this one
        return cls(
            choices=choices,
            usage=None if usage is None else TokenUsage(**usage),
            response_id=data.get("response_id"),
            served_model=data.get("served_model"),
            system_fingerprint=data.get("system_fingerprint"),
            ttft_s=None,
            output=list(data.get("output") or []),
        )


@dataclass
class Progress:
    """What one attempt received before it ended, kept for the record when it fails.

    A server bills a request it has started answering, whether or not the client got the
    whole answer: ``responded`` says an answer had started (an HTTP 200), ``text`` holds
    what had streamed by then, ``usage`` the last usage seen.
    """

    responded: bool = False
    text: list[str] = field(default_factory=list)
    usage: TokenUsage | None = None


class IncompleteStreamError(Exception):
    """The stream ended (the connection closed) before every choice had a ``finish_reason``."""


class MalformedChunkError(ValueError):
    """A streamed chunk that parses as JSON but is not shaped like a chat completion chunk."""


def timeout_for(seconds: float) -> httpx2.Timeout:
    """``seconds`` between bytes (so a hung stream fails), connect capped at 10 s."""
    return httpx2.Timeout(seconds, connect=min(seconds, 10.0))


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
                progress.usage = _usage(json_object(chunk["usage"], "usage"))
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


def json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, else ``MalformedChunkError`` saying what it should be."""
    if not isinstance(value, dict):
        raise MalformedChunkError(f"{what} is not a JSON object: {value!r:.200}")
    return value


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


def _usage(raw: dict[str, Any]) -> TokenUsage:
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


def whole_number(raw: Any, name: str) -> int | None:
    """A usage count from ``raw[name]``: None when absent; 12.0 read as 12."""
    value = raw.get(name) if isinstance(raw, dict) else None
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # some proxies send 12.0
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedChunkError(f"usage.{name} is not a whole number: {value!r:.200}")
    return value
