"""One streamed call of the Responses API: send, read the events, keep the output and usage.

The answer is read from the response the last event carries (``response.completed``,
``response.incomplete``); the text deltas before it feed the live display and, when the
stream breaks off, the record of what had streamed. A stream that ends without one of those
events broke off mid-answer and is retried; ``response.failed`` and ``error`` events raise.
"""

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

# Why a response stopped early, as a Chat Completions finish_reason (the records' vocabulary).
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
# response.failed codes worth another attempt; the others (a bad prompt, say) are final.
RETRYABLE_FAILURES = frozenset({"server_error", "rate_limit_exceeded", "vector_store_timeout"})


class ResponseFailedError(Exception):
    """The server ended the response with ``response.failed`` (its ``error.code`` kept)."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(f"response failed ({code or 'no code'}): {message}")
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_FAILURES


class StreamErrorEvent(Exception):
    """The stream sent an ``error`` event."""


async def stream_response(
    client: AsyncOpenAI,
    body: dict[str, Any],
    timeout_s: float,
    on_delta: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> Completion:
    """Stream one response; ``on_delta`` gets each piece of output text as it arrives.

    Raises what the SDK or the transport raises, ``ResponseFailedError``,
    ``StreamErrorEvent``, ``MalformedChunkError`` for an event of the wrong shape, and
    ``IncompleteStreamError`` for a stream that ends without a final response.
    """
    from runner.wire.sse import DoneStream

    started = time.perf_counter()
    progress = progress if progress is not None else Progress()
    stream = await client.post(
        "/responses",
        body={**body, "stream": True},
        cast_to=object,
        stream=True,
        stream_cls=DoneStream,
        options={"timeout": timeout_for(timeout_s)},
    )
    assert isinstance(stream, DoneStream)
    progress.responded = True
    ttft: float | None = None
    final: dict[str, Any] | None = None
    rid = served = None
    async with stream:
        async for raw in stream:
            event = json_object(raw, "stream event")
            kind = event.get("type")
            if kind in ("response.created", "response.in_progress"):
                response = json_object(event.get("response") or {}, "response")
                rid = rid or response.get("id")
                served = served or response.get("model")
            elif kind in ("response.output_text.delta", "response.refusal.delta"):
                delta = event.get("delta")
                if not isinstance(delta, str):
                    raise MalformedChunkError(f"{kind} delta is not text: {delta!r:.200}")
                if ttft is None:
                    ttft = time.perf_counter() - started
                progress.text.append(delta)
                if kind == "response.output_text.delta" and on_delta is not None:
                    on_delta(delta)
            elif kind == "response.function_call_arguments.delta":
                progress.text.append(str(event.get("delta") or ""))
            elif kind in ("response.completed", "response.incomplete"):
                final = json_object(event.get("response"), "response")
                if final.get("usage") is not None:
                    progress.usage = responses_usage(json_object(final["usage"], "usage"))
            elif kind == "response.failed":
                response = json_object(event.get("response") or {}, "response")
                error = response.get("error") or {}
                code = error.get("code") if isinstance(error, dict) else None
                message = error.get("message") if isinstance(error, dict) else None
                raise ResponseFailedError(code, str(message or "no message"))
            elif kind == "error":
                raise StreamErrorEvent(
                    f"error event ({event.get('code') or 'no code'}): "
                    f"{event.get('message') or 'no message'}"
                )
    if final is None:
        raise IncompleteStreamError(
            "the stream ended without response.completed (the connection closed mid-answer "
            f"after {sum(len(t) for t in progress.text)} characters)"
        )
    return response_completion(final, rid, served, ttft, progress.usage)


def response_completion(
    response: dict[str, Any],
    rid: str | None,
    served: str | None,
    ttft: float | None,
    usage: TokenUsage | None,
) -> Completion:
    """A Response object (the last event's, or a Batch API answer) as a ``Completion``: its
    text, refusal and function calls, and why it stopped."""
    output = response.get("output") or []
    if not isinstance(output, list):
        raise MalformedChunkError(f"response.output is not a list: {output!r:.200}")
    choice = Choice(0)
    for raw in output:
        item = json_object(raw, "output item")
        if item.get("type") == "message":
            for part in item.get("content") or []:
                part = json_object(part, "content part")
                if part.get("type") == "output_text":
                    choice.text += str(part.get("text") or "")
                elif part.get("type") == "refusal":
                    choice.refusal = (choice.refusal or "") + str(part.get("refusal") or "")
        elif item.get("type") == "function_call":
            choice.tool_calls.append(
                ToolCall(
                    str(item.get("call_id") or ""),
                    str(item.get("name") or ""),
                    str(item.get("arguments") or ""),
                )
            )
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details") or {}
        reason = details.get("reason") if isinstance(details, dict) else None
        choice.finish_reason = _INCOMPLETE.get(str(reason), str(reason or "incomplete"))
    elif choice.tool_calls:
        choice.finish_reason = "tool_calls"
    else:
        choice.finish_reason = "stop"
    return Completion(
        choices=[choice],
        usage=usage,
        response_id=response.get("id") or rid,
        served_model=response.get("model") or served,
        system_fingerprint=None,
        ttft_s=ttft,
        output=[dict(item) for item in output],
    )


def responses_usage(raw: dict[str, Any]) -> TokenUsage:
    """A Responses API ``usage`` object as the record's usage."""
    input_details = raw.get("input_tokens_details") or {}
    output_details = raw.get("output_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=whole_number(raw, "input_tokens"),
        completion_tokens=whole_number(raw, "output_tokens"),
        total_tokens=whole_number(raw, "total_tokens"),
        cached_tokens=whole_number(input_details, "cached_tokens"),
        reasoning_tokens=whole_number(output_details, "reasoning_tokens"),
        source="api",
    )
