"""One streamed chat completion: send, read the chunks, keep the answer, usage and timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from openai import AsyncOpenAI, AsyncStream

from runner.record import TokenUsage


@dataclass
class Completion:
    """What one successful streamed call returned."""

    answer: str
    finish_reason: str | None
    usage: TokenUsage | None
    response_id: str | None
    served_model: str | None
    system_fingerprint: str | None
    ttft_s: float | None

    def to_cache(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["usage"] = None if self.usage is None else dict(self.usage.__dict__)
        return data

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> Completion:
        usage = data.get("usage")
        # no call was made: the original call's time to first token says nothing of this one
        return cls(
            **{**data, "usage": None if usage is None else TokenUsage(**usage), "ttft_s": None}
        )


def timeout_for(seconds: float) -> httpx2.Timeout:
    """``seconds`` between bytes (so a hung stream fails), connect capped at 10 s."""
    return httpx2.Timeout(seconds, connect=min(seconds, 10.0))


async def stream_completion(
    client: AsyncOpenAI,
    model: str,
    messages: list[dict[str, str]],
    params: dict[str, Any],
    timeout_s: float,
    on_delta: Callable[[str], None] | None = None,
) -> Completion:
    """Stream one chat completion; the last usage seen wins (some servers repeat it per chunk).

    ``on_delta`` is called with each piece of the answer as it arrives (live display).
    Raises whatever the SDK or the transport raises, and ``MalformedChunkError`` for a chunk
    that is JSON but not a chat completion chunk; ``runner.retry`` decides what is retried.

    The request goes through the client's ``post`` (its auth, base URL, timeouts, error
    classes and server-sent-event decoding) with the body as the runner already holds it, and
    each chunk is read as the JSON object it is. The typed ``chat.completions.create`` would
    rebuild the request params and a model object for every chunk, about half of all the
    client-side CPU time of a call, for the six fields read here.
    """
    started = time.perf_counter()
    body = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        **params,
    }
    stream = await client.post(
        "/chat/completions",
        body=body,
        cast_to=object,
        stream=True,
        stream_cls=AsyncStream[object],
        options={"timeout": timeout_for(timeout_s)},
    )
    parts: list[str] = []
    ttft: float | None = None
    finish: str | None = None
    usage: dict[str, Any] | None = None
    rid = served = fingerprint = None
    async with stream:
        async for raw in stream:
            chunk = _object(raw, "stream chunk")
            rid = rid or chunk.get("id")
            served = served or chunk.get("model")
            fingerprint = fingerprint or chunk.get("system_fingerprint")
            if chunk.get("usage") is not None:
                usage = _object(chunk["usage"], "usage")
            choices = chunk.get("choices") or []
            if not isinstance(choices, list):
                raise MalformedChunkError(f"choices is not a list: {choices!r:.200}")
            for choice in choices[:1]:
                delta = _object(_object(choice, "choice").get("delta") or {}, "delta")
                content = delta.get("content")
                if content:
                    if not isinstance(content, str):
                        raise MalformedChunkError(f"delta.content is not text: {content!r:.200}")
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    parts.append(content)
                    if on_delta is not None:
                        on_delta(content)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
    return Completion(
        answer="".join(parts),
        finish_reason=finish,
        usage=None if usage is None else _usage(usage),
        response_id=rid,
        served_model=served,
        system_fingerprint=fingerprint,
        ttft_s=ttft,
    )


class MalformedChunkError(ValueError):
    """A streamed chunk that parses as JSON but is not shaped like a chat completion chunk."""


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedChunkError(f"{what} is not a JSON object: {value!r:.200}")
    return value


def _usage(raw: dict[str, Any]) -> TokenUsage:
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=_count(raw, "prompt_tokens"),
        completion_tokens=_count(raw, "completion_tokens"),
        total_tokens=_count(raw, "total_tokens"),
        cached_tokens=_count(prompt_details, "cached_tokens"),
        reasoning_tokens=_count(completion_details, "reasoning_tokens"),
        source="api",
    )


def _count(raw: Any, name: str) -> int | None:
    value = raw.get(name) if isinstance(raw, dict) else None
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # some proxies send 12.0
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedChunkError(f"usage.{name} is not a whole number: {value!r:.200}")
    return value
