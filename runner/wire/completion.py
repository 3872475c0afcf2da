"""What one call returned, whichever API answered it: its choices (text, refusal, tool calls,
finish reason), usage and provenance, what a failed attempt had received, and the parse errors
the stream parsers raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2

from runner.base.record import CallError, TokenUsage


@dataclass
class ToolCall:
    """One call the model asked for: its id, the function's name, and the raw JSON arguments."""

    id: str
    name: str
    arguments: str


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


def json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, else ``MalformedChunkError`` saying what it should be."""
    if not isinstance(value, dict):
        raise MalformedChunkError(f"{what} is not a JSON object: {value!r:.200}")
    return value


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
