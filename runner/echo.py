"""The offline ``echo`` model: an in-process transport that speaks the OpenAI wire format.

Requests go through the real openai SDK (streaming, usage chunk and all) to a handler that
answers with the last user message, word by word, truncated at the request's token limit
and cut at its first stop sequence. No network, no API key, fully deterministic.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx2

from runner.tokens import get_counter

ECHO_BASE_URL = "http://echo.invalid/v1"
FINGERPRINT = "fp_echo_offline"


def echo_transport() -> httpx2.MockTransport:
    """A transport for ``httpx2.Client``/``AsyncClient`` that answers like a chat endpoint."""
    return httpx2.MockTransport(_handle)


def echo_reply(body: dict[str, Any]) -> tuple[str, str]:
    """The answer text and finish reason the echo model gives for a request body."""
    question = next(
        (m.get("content") or "" for m in reversed(body.get("messages", [])) if m["role"] == "user"),
        "",
    )
    for stop in body.get("stop") or []:
        if stop and stop in question:
            return question[: question.index(stop)], "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is None:
        return question, "stop"
    counter = get_counter("o200k_base")
    words: list[str] = []
    used = 0
    for word in question.split(" "):
        used += counter.count_text(word + " ")
        if used > limit:
            return " ".join(words), "length"
        words.append(word)
    return question, "stop"


def _handle(request: httpx2.Request) -> httpx2.Response:
    if not request.url.path.endswith("/chat/completions"):
        return _error(404, f"the echo model serves /chat/completions only, not {request.url.path}")
    try:
        body = json.loads(request.content)
        messages = body["messages"]
    except (ValueError, KeyError):
        return _error(400, "request body must be JSON with a 'messages' list")
    answer, finish = echo_reply(body)
    n = body.get("n") or 1
    counter = get_counter("o200k_base")
    prompt_tokens = counter.count_messages(messages)
    completion_tokens = n * (counter.count_text(answer) if answer else 0)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    rid = "chatcmpl-echo-" + hashlib.sha256(request.content).hexdigest()[:16]
    base = {
        "id": rid,
        "created": int(time.time()),
        "model": body.get("model", "echo"),
        "system_fingerprint": FINGERPRINT,
    }
    if not body.get("stream"):
        message = {"role": "assistant", "content": answer}
        choices = [{"index": i, "message": message, "finish_reason": finish} for i in range(n)]
        return httpx2.Response(
            200,
            json={**base, "object": "chat.completion", "usage": usage, "choices": choices},
        )
    chunk = {**base, "object": "chat.completion.chunk"}
    pieces = [w + " " for w in answer.split(" ")]
    pieces[-1] = pieces[-1][:-1]
    events: list[dict[str, Any]] = []
    for i in range(n):  # with n > 1 every choice is the same answer, streamed in turn
        role = {"role": "assistant", "content": ""}
        events.append({**chunk, "choices": [{"index": i, "delta": role, "finish_reason": None}]})
        events += [
            {**chunk, "choices": [{"index": i, "delta": {"content": p}, "finish_reason": None}]}
            for p in pieces
            if p
        ]
        events.append({**chunk, "choices": [{"index": i, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk, "choices": [], "usage": usage})
    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=sse.encode("utf-8")
    )


def _error(status: int, message: str) -> httpx2.Response:
    return httpx2.Response(
        status, json={"error": {"message": message, "type": "invalid_request_error", "code": None}}
    )
