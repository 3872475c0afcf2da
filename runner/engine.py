"""One streamed chat completion: send, read the chunks, keep the answer, usage and timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from openai import AsyncOpenAI

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
    Raises whatever the SDK or the transport raises; ``runner.retry`` decides what is retried.
    """
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        timeout=timeout_for(timeout_s),
        **params,
    )
    parts: list[str] = []
    ttft: float | None = None
    finish: str | None = None
    usage: Any = None
    rid = served = fingerprint = None
    async with stream:
        async for chunk in stream:
            rid = rid or chunk.id
            served = served or chunk.model
            fingerprint = fingerprint or chunk.system_fingerprint
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices[:1]:
                if choice.delta.content:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    parts.append(choice.delta.content)
                    if on_delta is not None:
                        on_delta(choice.delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
    return Completion(
        answer="".join(parts),
        finish_reason=finish,
        usage=None if usage is None else _usage(usage),
        response_id=rid,
        served_model=served,
        system_fingerprint=fingerprint,
        ttft_s=ttft,
    )


def _usage(raw: Any) -> TokenUsage:
    prompt_details = getattr(raw, "prompt_tokens_details", None)
    completion_details = getattr(raw, "completion_tokens_details", None)
    return TokenUsage(
        prompt_tokens=raw.prompt_tokens,
        completion_tokens=raw.completion_tokens,
        total_tokens=raw.total_tokens,
        cached_tokens=getattr(prompt_details, "cached_tokens", None),
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", None),
        source="api",
    )
