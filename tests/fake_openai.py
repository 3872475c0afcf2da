"""A fake OpenAI-compatible server (Chat Completions, Responses, Conversations) for tests and
benchmarks.

It is a raw ASGI app served by uvicorn on 127.0.0.1; nothing leaves the machine.

In-process use::

    with FakeOpenAIServer() as server:
        client = OpenAI(api_key="test", base_url=server.base_url, max_retries=0)
        server.enqueue("429", Behaviour("500"), "ok")
        ...

As a separate process (benchmarks)::

    python tests/fake_openai.py --port 8123 [--latency-s 0.05] [--rate-limit-per-s 200] [--no-usage]

prints ``READY http://127.0.0.1:8123/v1`` on stdout once it is listening.

The answer is deterministic: ``"fake answer to: " + <content of the last user message>``,
streamed in about three content chunks. ``max_tokens`` / ``max_completion_tokens`` cut it to that
many words, with finish_reason ``length``.

A request with ``n`` > 1 gets n choices from every kind that answers: choice 0 is the usual
answer and choice i > 0 is the usual answer + ``" (choice i)"`` (cut to the token limit, if any).
Streamed, the choices interleave one chunk at a time (choice i's role chunk comes just before its
first content chunk), each chunk carrying one choice and its ``index``; each choice ends with its
own finish_reason; options counted in chunks (``after_chunks``) count the chunks of each choice.
Usage counts the completion tokens of all choices together and the prompt once.

Scripted behaviours (``server.enqueue(...)``; each request pops the next one, "ok" when empty):

``ok``           normal answer (streaming or not, as requested).
``no_usage``     normal answer without any usage information.
``429``          rate-limit error; options ``retry_after`` (seconds, ``retry-after`` header) or
                 ``retry_after_ms`` (``retry-after-ms`` header).
``quota``        429 with OpenAI's exhausted-quota body (code ``insufficient_quota``), no
                 retry-after header.
``500``/``503``  server errors with an OpenAI-style error body.
``401``          authentication error (code ``invalid_api_key``).
``400_context``  400 with code ``context_length_exceeded``.
``hang``         read the request and send nothing for ``hang_s`` seconds (default 30, capped at
                 600; ends early when the client disconnects or the server stops), then close
                 the connection without any response.
``cut``          send the headers and ``after_chunks`` (default 1) content chunks, then abort the
                 connection without ``[DONE]`` and without ending the chunked body.
                 Non-streaming: half the body under its full content-length, then abort.
``no_done``      streaming: the role chunk and the content chunks (only the first
                 ``after_chunks`` if given), no finish_reason, no usage chunk, then the body ends
                 cleanly without ``[DONE]``. ``finish=True``: the last content chunk sent carries
                 the finish_reason and the usage chunk is sent if asked for (still no
                 ``[DONE]``). Non-streaming: a 200 whose ``finish_reason`` is null (the content
                 is the first ``after_chunks`` pieces if given; ``finish=True`` keeps the
                 finish_reason).
``refusal``      the model refuses: ``text`` (default :data:`REFUSAL_TEXT`) streamed in about
                 three ``delta.refusal`` chunks with no content (the role chunk has
                 ``content: null, refusal: ""``, as OpenAI sends), then a chunk with an empty
                 delta and finish_reason ``stop``; usage counts the refusal's words.
                 Non-streaming: ``message.content`` null and ``message.refusal`` the text.
``content_filter``  the first ``after_chunks`` (default 1) content chunks, then a chunk with an
                 empty delta and finish_reason ``content_filter``, then usage (if asked for) and
                 ``[DONE]``; usage counts the words sent. Non-streaming: the partial content
                 with finish_reason ``content_filter``.
``stream_error`` streaming: one content chunk, then an SSE event ``data: {"error": {...}}``
                 (type ``server_error``; the SDK raises ``APIError``) and the body ends
                 cleanly. Non-streaming: a 500 with the same error body.
``malformed``    send one content chunk, then a ``data: {not json`` line, then the rest of the
                 stream. Non-streaming: a 200 whose body is not JSON.
``bad_shape``    streaming only: send one content chunk, then a chunk that is JSON but not a
                 chat completion chunk (``choices`` is a string), then the rest of the stream.
``slow_stream``  content chunks spaced by ``gap_s`` seconds (default 0.2); with ``n`` > 1, each
                 round of one chunk per choice.
``no_tool``      answer with text even when function tools are offered.
``tool_twice``   call the tool in two rounds before answering: the model calls it again when
                 the newest input answers a call it made under this behaviour (whatever
                 "ok" request comes next), and answers once two calls follow the last user
                 message. One ``enqueue("tool_twice")`` scripts the whole exchange.
``failed``       Responses: the stream ends with ``response.failed`` (status ``failed``, error
                 code ``server_error``) after ``after_chunks`` (default 0) text deltas; without
                 streaming, a 200 whose status is ``failed``. Chat Completions: as ``500``.
``incomplete``   Responses: the first ``after_chunks`` (default 1) pieces of the answer, then
                 ``response.incomplete`` with ``incomplete_details.reason`` = option ``reason``
                 (default ``"max_output_tokens"``, or ``"content_filter"``). Chat Completions:
                 the same pieces, then finish_reason ``length`` (or ``content_filter``).

Function tools (both APIs): when a request offers function tools, ``tool_choice`` is not
``"none"`` and the newest input is a user message, the model calls the first function tool
(or the one ``tool_choice`` names) once, with arguments giving each ``required`` property of
its ``parameters`` the last user text (strings), 1 (integers, numbers) or true (booleans).
Chat Completions streams the call as ``delta.tool_calls`` chunks (the role chunk carries
``id``, ``type`` and ``function.name``; the arguments follow in two pieces; then an empty delta
with finish_reason ``tool_calls``). When the newest input is a tool result, the answer is
``ANSWER_PREFIX + question + " (tool <name> said: <output>)"``. Tool messages that answer no
call, and calls left unanswered, are 400s as OpenAI sends them.

Responses API (``POST /v1/responses``, streamed or not): ``input`` (a string or items),
``instructions``, ``previous_response_id``, ``conversation``, ``store`` (default true),
``tools``, ``tool_choice``, ``max_output_tokens`` (words, as ``max_tokens``; the response ends
``incomplete``), ``text.format`` (``json_schema``: the answer is a JSON object giving each
required property a value of its type, strings being the last user text), ``include``; other
known parameters are accepted; an unknown one is a 400 ``Unsupported parameter``. A stream
is ``event: <type>`` / ``data: <json>`` pairs numbered by ``sequence_number``, without
``[DONE]``::

    response.created, response.in_progress,
    per output item: response.output_item.added,
      message: response.content_part.added, response.output_text.delta x3,
               [response.output_text.annotation.added per citation],
               response.output_text.done, response.content_part.done
      (a refusal: response.refusal.delta x3 and response.refusal.done instead)
      function call: response.function_call_arguments.delta x2,
               response.function_call_arguments.done
    response.output_item.done, then response.completed (or response.incomplete).

Built-in tools, when offered, come before the message: ``web_search`` (or
``web_search_preview``) a ``web_search_call`` item and a ``url_citation``; ``file_search`` a
``file_search_call`` item (``results`` with ``include=["file_search_call.results"]``) and a
``file_citation``; ``code_interpreter`` a ``code_interpreter_call`` item (``outputs`` with
``include=["code_interpreter_call.outputs"]``). Usage: ``input_tokens`` is 7 per item the model
saw (instructions included) plus the words of its text; ``output_tokens`` the words of the
answer (and of a call's arguments).

State: stored responses (``GET /v1/responses/{id}``) keep their whole context (previous
context, input items, output items) for ``previous_response_id``; ``POST /v1/conversations``,
``GET /v1/conversations/{id}`` and ``GET``/``POST /v1/conversations/{id}/items`` keep
conversations, whose items a response with ``conversation`` reads and extends (``store:
false`` keeps a response from being continued or fetched). An unknown
``previous_response_id`` is a 400 (code ``previous_response_not_found``), an unknown
conversation a 404; a function call output without its call, or a call left without an
output, a 400. The answer depends on the context only through its last user message.
:meth:`FakeOpenAIServer.context_of` gives the items the model saw for a response;
``path_counts`` counts requests per method and path.

Behaviours apply to ``/v1/chat/completions`` and ``POST /v1/responses``: on the Responses API
the error kinds are as for chat; ``cut`` aborts after ``after_chunks`` (default 1) deltas;
``no_done`` ends the stream cleanly without ``response.completed`` (after ``after_chunks``
deltas if given; ``finish=True`` sends everything else; without streaming, a 200 whose status
is ``in_progress``); ``content_filter`` is ``incomplete`` with reason ``content_filter``;
``stream_error`` sends a top-level ``error`` event after one delta; ``refusal`` streams a
refusal part; ``malformed``/``bad_shape`` send a line that is not JSON / JSON that is not an
event after the first delta. Only responses that end ``completed`` or ``incomplete`` are kept
for continuing and join their conversation.

Batch API: ``POST /v1/files`` (multipart ``file`` and ``purpose``), ``GET /v1/files/{id}`` and
``GET /v1/files/{id}/content`` keep files; ``POST /v1/batches`` (``input_file_id``, ``endpoint``
``/v1/chat/completions`` or ``/v1/responses``, ``completion_window`` ``24h``), ``GET
/v1/batches/{id}`` and ``POST /v1/batches/{id}/cancel`` run batches. A batch whose input file
has a line that is not ``{custom_id, method: POST, url: <endpoint>, body}``, repeats a
``custom_id``, mixes models or asks to stream is ``failed`` from the start (``errors`` name the
line). Otherwise it is ``validating``, then each retrieve finds it ``in_progress`` until
``batch_polls`` retrieves have seen it so; the next one answers every line as the same
request sent without streaming would be answered (scripted behaviours included, one per line;
each line counts in ``requests`` and ``request_count``) and finds it ``completed``. Answers
with a status below 400 go to the output file (``purpose: batch_output``, lines in reverse
order: OpenAI does not keep the input's), the others to the error file, each line ``{id,
custom_id, response: {status_code, request_id, body}, error}``. Knobs (attributes):
``batch_fail_lines`` (line numbers, from 1, of each input file answered with an error line
``{response: null, error: {code: server_error, message}}``), ``batch_end`` (``"completed"``;
``"failed"``: the batch fails as a whole with code ``token_limit_exceeded`` and no files;
``"expired"``: the first ``batch_expire_after`` lines are answered, the rest are error lines
with code ``batch_expired``). A cancelled batch is ``cancelling``, then ``cancelled`` at the
next retrieve, with no files. :meth:`FakeOpenAIServer.batches_made` lists the batches and
:meth:`FakeOpenAIServer.file_content` gives a file's bytes.

A request refused by ``rate_limit_per_s`` does not consume a scripted behaviour. The listening
socket takes a backlog of :data:`BACKLOG` connections, so a burst of a thousand connects is
accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import email.parser
import email.policy
import json
import logging
import math
import re
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

__all__ = ["BACKLOG", "KINDS", "REFUSAL_TEXT", "Behaviour", "FakeOpenAIServer", "free_port", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KINDS = frozenset(
    {
        "ok",
        "no_usage",
        "429",
        "500",
        "503",
        "401",
        "400_context",
        "hang",
        "cut",
        "malformed",
        "bad_shape",
        "slow_stream",
        "no_done",
        "refusal",
        "content_filter",
        "quota",
        "stream_error",
        "no_tool",
        "tool_twice",
        "failed",
        "incomplete",
    }
)
# The kinds that answer with a completion (the others answer with an error or nothing).
ANSWERING = frozenset(
    {
        "ok",
        "no_usage",
        "cut",
        "malformed",
        "bad_shape",
        "slow_stream",
        "no_done",
        "refusal",
        "content_filter",
        "stream_error",
        "no_tool",
        "tool_twice",
        "failed",
        "incomplete",
    }
)

ANSWER_PREFIX = "fake answer to: "
SYSTEM_FINGERPRINT = "fp_fake"
MAX_HANG_S = 600.0
N_PIECES = 3
REFUSAL_TEXT = "I'm sorry, but I can't help with that."
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
STREAM_ERROR_MESSAGE = "The server had an error while processing your request."
# Connections the kernel may queue before uvicorn accepts them (Linux caps it at somaxconn).
BACKLOG = 4096
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/responses")
BATCH_LINE_FAILED_MESSAGE = "The server had an error while processing this request."
BATCH_EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
BATCH_TOKEN_LIMIT_MESSAGE = (
    "Enqueued token limit reached for {model} in organization org-fake. Limit: 2,000,000 "
    "enqueued tokens. Please try again once some in_progress batches have been completed."
)

_WORD_RE = re.compile(r"\S+\s*")
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_DONE = b"data: [DONE]\n\n"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Behaviour:
    """One scripted reaction: ``Behaviour("429", retry_after_ms=50)``."""

    kind: str
    opts: dict[str, Any] = field(default_factory=dict)

    def __init__(self, kind: str, **opts: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown behaviour {kind!r}; expected one of {sorted(KINDS)}")
        self.kind = kind
        self.opts = dict(opts)

    @classmethod
    def coerce(cls, value: Behaviour | str) -> Behaviour:
        return value if isinstance(value, Behaviour) else cls(str(value))


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """A request body that is a JSON object (an empty body is ``{}``), else None."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


_OK = Behaviour("ok")


class _Abort(Exception):
    """Raised inside the app to make uvicorn drop the connection."""


class _QuietAbortFilter(logging.Filter):
    """Keep the deliberate connection aborts out of uvicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, _Abort):
            return False
        return "returned without" not in record.getMessage()


_ERROR_LOGGER = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _QuietAbortFilter) for f in _ERROR_LOGGER.filters):
    _ERROR_LOGGER.addFilter(_QuietAbortFilter())


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    error = {"message": message, "type": type_, "param": param, "code": code}
    return _DUMPS({"error": error}).encode()


_UNPARSEABLE = _error_body(
    "We could not parse the JSON body of your request.", "invalid_request_error", None
)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    return str(content)


def _prompt_tokens(messages: list[Any]) -> int:
    total = 0
    for msg in messages:
        total += 7
        if isinstance(msg, dict):
            total += len(_content_text(msg.get("content")).split())
    return total


def _last_user_text(messages: list[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _content_text(msg.get("content"))
    return ""


def _split_pieces(text: str, n: int = N_PIECES) -> list[str]:
    """Split ``text`` at word boundaries into at most ``n`` pieces that concatenate to it."""
    words = _WORD_RE.findall(text)
    if not words:
        return [text] if text else []
    k = min(n, len(words))
    size = math.ceil(len(words) / k)
    # _WORD_RE only drops leading whitespace, and the answer always starts with a word.
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _choice_count(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


class _Choice:
    """One choice of an answer: its text, the pieces it streams in, and why it ended.

    A choice that calls a function has ``call`` = (call id, function name) and its arguments
    as ``text``.
    """

    __slots__ = ("call", "finish_reason", "index", "pieces", "text", "words")

    def __init__(
        self, index: int, text: str, limit: Any, call: tuple[str, str] | None = None
    ) -> None:
        self.call = call
        if call is not None:
            self.finish_reason = "tool_calls"
            self.index = index
            self.text = text
            self.words = len(text.split())
            self.pieces = _halves(text)
            return
        words = _WORD_RE.findall(text)
        self.finish_reason = "stop"
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(words):
            text = "".join(words[:limit]).rstrip()
            words = words[:limit]
            self.finish_reason = "length"
        self.index = index
        self.text = text
        self.words = len(words)
        self.pieces = _split_pieces(text)


class _Answer:
    """The answer to one request: ``n`` choices (or refusals, or function calls) and the
    prompt's token count. ``call`` = (function name, arguments, call id prefix)."""

    __slots__ = ("choices", "prompt_tokens", "refusal")

    def __init__(
        self,
        body: dict[str, Any],
        refusal: str | None = None,
        ignore_n: bool = False,
        call: tuple[str, str, str] | None = None,
    ) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list):
            messages = []
        self.refusal = refusal is not None
        self.prompt_tokens = _prompt_tokens(messages)
        count = 1 if ignore_n else _choice_count(body)
        if call is not None:
            name, arguments, call_id = call
            self.choices = [
                _Choice(i, arguments, None, (f"{call_id}_{i}", name)) for i in range(count)
            ]
            return
        response_format = body.get("response_format")
        if refusal is not None:
            text = refusal
        elif isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            text = json.dumps(_schema_value(schema, _last_user_text(messages)), ensure_ascii=False)
        else:
            text = ANSWER_PREFIX + _last_user_text(messages) + _tool_said(_chat_turns(messages))
        limit = body.get("max_completion_tokens")
        if limit is None:
            limit = body.get("max_tokens")
        self.choices = [
            _Choice(i, text if i == 0 else f"{text} (choice {i})", limit) for i in range(count)
        ]

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def _word_count(pieces: list[str]) -> int:
    return sum(len(piece.split()) for piece in pieces)


def _after_chunks(behaviour: Behaviour) -> int | None:
    """How many content chunks of each choice the behaviour sends (None = all of them)."""
    kind = behaviour.kind
    if kind in ("cut", "content_filter", "incomplete"):
        return int(behaviour.opts.get("after_chunks", 1))
    if kind == "no_done" and behaviour.opts.get("after_chunks") is not None:
        return int(behaviour.opts["after_chunks"])
    if kind == "stream_error":
        return 1
    return None


def _refusal_text(behaviour: Behaviour) -> str | None:
    if behaviour.kind != "refusal":
        return None
    return str(behaviour.opts.get("text", REFUSAL_TEXT))


def _cut_finish(behaviour: Behaviour) -> str:
    """The finish_reason a chat answer cut short by ``content_filter``/``incomplete`` ends with."""
    if behaviour.kind == "incomplete" and _incomplete_reason(behaviour) == "max_output_tokens":
        return "length"
    return "content_filter"


def _incomplete_reason(behaviour: Behaviour) -> str:
    if behaviour.kind == "content_filter":
        return "content_filter"
    return str(behaviour.opts.get("reason", "max_output_tokens"))


def _halves(text: str) -> list[str]:
    """``text`` in two pieces (one if it is shorter than two characters)."""
    if len(text) < 2:
        return [text] if text else []
    return [text[: len(text) // 2], text[len(text) // 2 :]]


def _piece_words(pieces: list[str], j: int) -> int:
    """Words that piece ``j`` completes (pieces may split a word; the sum is the text's)."""
    return len("".join(pieces[: j + 1]).split()) - len("".join(pieces[:j]).split())


# ---------------------------------------------------------------------- the model's decisions


@dataclass
class _Turn:
    """One step of a conversation, whichever API carried it."""

    kind: str  # "message", "call" (a function call), "result" (its output) or "other"
    role: str = ""
    text: str = ""  # message text, call arguments or result output
    name: str = ""  # the function a call calls
    call_id: str = ""


def _chat_turns(messages: list[Any]) -> list[_Turn]:
    turns = []
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        role = str(msg.get("role"))
        if role == "tool":
            turns.append(
                _Turn(
                    "result",
                    role,
                    _content_text(msg.get("content")),
                    "",
                    str(msg.get("tool_call_id")),
                )
            )
            continue
        calls = msg.get("tool_calls")
        if msg.get("content") is not None or not calls:
            turns.append(_Turn("message", role, _content_text(msg.get("content"))))
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                turns.append(
                    _Turn(
                        "call",
                        role,
                        str(function.get("arguments", "")),
                        str(function.get("name", "")),
                        str(call.get("id")),
                    )
                )
    return turns


def _item_turns(items: list[dict[str, Any]]) -> list[_Turn]:
    turns = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            turns.append(
                _Turn("message", str(item.get("role")), _content_text(item.get("content")))
            )
        elif kind == "function_call":
            turns.append(
                _Turn(
                    "call",
                    "assistant",
                    str(item.get("arguments", "")),
                    str(item.get("name", "")),
                    str(item.get("call_id")),
                )
            )
        elif kind == "function_call_output":
            output = _content_text(item.get("output"))
            turns.append(_Turn("result", "tool", output, "", str(item.get("call_id"))))
        else:
            turns.append(_Turn("other"))
    return turns


def _question(turns: list[_Turn]) -> str:
    """The text of the last user message."""
    for turn in reversed(turns):
        if turn.kind == "message" and turn.role == "user":
            return turn.text
    return ""


def _latest_results(turns: list[_Turn]) -> list[_Turn]:
    """The tool results the conversation ends with (none unless its newest input is one)."""
    results: list[_Turn] = []
    for turn in reversed(turns):
        if turn.kind != "result":
            break
        results.append(turn)
    return results[::-1]


def _tool_said(turns: list[_Turn]) -> str:
    """`` (tool <name> said: <output>)`` for each tool result the conversation ends with."""
    names = {turn.call_id: turn.name for turn in turns if turn.kind == "call"}
    return "".join(
        f" (tool {names.get(turn.call_id, 'unknown')} said: {turn.text})"
        for turn in _latest_results(turns)
    )


def _calls_since_question(turns: list[_Turn]) -> int:
    count = 0
    for turn in reversed(turns):
        if turn.kind == "message" and turn.role == "user":
            break
        count += turn.kind == "call"
    return count


def _function_tools(tools: Any, nested: bool) -> list[dict[str, Any]]:
    """The function tools offered (``{"name", "parameters", ...}``); Chat Completions nests
    each under ``function``, the Responses API has them flat."""
    found = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            spec = tool.get("function") if nested else tool
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                found.append(spec)
    return found


def _chosen_tool(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any] | None:
    """The function the model calls: the one ``tool_choice`` names, else the first."""
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        function = choice.get("function")
        name = choice.get("name") or (function.get("name") if isinstance(function, dict) else None)
        for tool in tools:
            if tool["name"] == name:
                return tool
    return tools[0]


# Kinds whose answer is text whatever tools are offered.
_NO_CALL = frozenset({"no_tool", "refusal", "content_filter", "incomplete", "failed"})


def _wants_call(turns: list[_Turn], tool: dict[str, Any] | None, kind: str, twice: bool) -> bool:
    """Whether the model calls ``tool`` now: on a new question, or (``twice``) again on the
    first call's result."""
    if tool is None or kind in _NO_CALL or not turns:
        return False
    newest = turns[-1]
    if newest.kind == "message" and newest.role == "user":
        return True
    return twice and newest.kind == "result" and _calls_since_question(turns) < 2


def _schema_value(schema: Any, text: str) -> Any:
    """A value of the type ``schema`` asks for: ``text`` for strings, 1, true, [], or an object
    giving each required property a value."""
    if not isinstance(schema, dict):
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and isinstance(schema.get("anyOf"), list) and schema["anyOf"]:
        return _schema_value(schema["anyOf"][0], text)
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            key: _schema_value(properties.get(key), text) for key in schema.get("required") or []
        }
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "null": None}.get(kind, text)


def _arguments(tool: dict[str, Any], question: str) -> str:
    parameters = tool.get("parameters")
    schema = parameters if isinstance(parameters, dict) else {"type": "object"}
    return _DUMPS(_schema_value(schema, question))


def _chat_problem(body: dict[str, Any]) -> bytes | None:
    """The 400 body OpenAI sends for malformed tools or tool messages, else None."""
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        nested = isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        if isinstance(tool, dict) and tool.get("type", "function") == "function" and not nested:
            param = f"tools[{i}].function"
            msg = f"Missing required parameter: '{param}'."
            return _error_body(msg, "invalid_request_error", "missing_required_parameter", param)
    messages = body.get("messages")
    unanswered: list[str] = []  # the calls of the last assistant message not answered yet
    calls: set[str] = set()
    asked_at = -1
    for i, msg in enumerate(messages if isinstance(messages, list) else []):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "tool":
            if asked_at < 0:
                msg_ = (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."
                )
                return _error_body(msg_, "invalid_request_error", None, f"messages.[{i}].role")
            call_id = msg.get("tool_call_id")
            if call_id not in calls:
                msg_ = (
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message."
                )
                param = f"messages.[{i}].tool_call_id"
                return _error_body(msg_, "invalid_request_error", None, param)
            if call_id in unanswered:
                unanswered.remove(call_id)
            continue
        if unanswered:
            break
        asked_at = -1
        tool_calls = msg.get("tool_calls") if isinstance(msg, dict) else None
        if role == "assistant" and isinstance(tool_calls, list) and tool_calls:
            unanswered = [str(c.get("id")) for c in tool_calls if isinstance(c, dict)]
            calls = set(unanswered)
            asked_at = i
    if unanswered:
        msg_ = (
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(unanswered)
        )
        return _error_body(msg_, "invalid_request_error", None, f"messages.[{asked_at}].role")
    return None


# ---------------------------------------------------------------------- Responses API

# What ``POST /v1/responses`` accepts (the SDK's ResponseCreateParams, and ``stream``).
RESPONSE_PARAMS = frozenset(
    {
        "access_programs",
        "background",
        "background_options",
        "context_management",
        "conversation",
        "image",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "moderation",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
WEB_SEARCH_TOOLS = frozenset(
    {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
)
FAILED_MESSAGE = "The model failed to generate a response."
CITED_FILE_ID = "file-fake0001"
CITED_FILENAME = "notes.md"
_SLUG_RE = re.compile(r"[^a-z0-9]+")
# Request fields whose JSON type the API checks: (name, Python types, what the message says).
_SHAPES: list[tuple[str, type | tuple[type, ...], str]] = [
    ("input", (str, list), "one of a string or array of input items"),
    ("text", dict, "an object"),
    ("tools", list, "an array"),
    ("include", list, "an array"),
]
_JSON_TYPES: dict[type, str] = {str: "a string", dict: "an object", list: "an array"}
_JSON_TYPES.update({bool: "a boolean", int: "an integer", float: "a number"})


def _message_item(role: str, text: str) -> dict[str, Any]:
    part = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": part, "text": text}]}


def _input_items(value: Any) -> list[dict[str, Any]]:
    """``input`` as a list of items: a string is one user message; a message's string content
    becomes one text part."""
    if isinstance(value, str):
        return [_message_item("user", value)]
    items = []
    for raw in value if isinstance(value, list) else []:
        if not isinstance(raw, dict):
            continue
        item = dict(raw)
        if "role" in item and item.get("type", "message") == "message":
            item["type"] = "message"
            if isinstance(item.get("content"), str):
                item["content"] = _message_item(str(item["role"]), item["content"])["content"]
        items.append(item)
    return items


def _item_text(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "message":
        return _content_text(item.get("content"))
    if kind == "function_call":
        return str(item.get("arguments", ""))
    if kind == "function_call_output":
        return _content_text(item.get("output"))
    return ""


def _items_tokens(items: list[dict[str, Any]]) -> int:
    """The fake's input tokens: 7 per item plus the words of its text."""
    return sum(7 + len(_item_text(item).split()) for item in items)


def _context_problem(context: list[dict[str, Any]]) -> bytes | None:
    """The 400 body for a function call output without its call, or a call without output."""
    calls = [i.get("call_id") for i in context if i.get("type") == "function_call"]
    outputs = [i.get("call_id") for i in context if i.get("type") == "function_call_output"]
    for call_id in outputs:
        if call_id not in calls:
            msg = f"No tool call found for function call output with call_id {call_id}."
            return _error_body(msg, "invalid_request_error", None, "input")
    for call_id in calls:
        if call_id not in outputs:
            msg = f"No tool output found for function call {call_id}."
            return _error_body(msg, "invalid_request_error", None, "input")
    return None


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _item_list(items: list[dict[str, Any]], has_more: bool) -> bytes:
    page = {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }
    return _DUMPS(page).encode()


class _Exchange:
    """One Responses API request worked out: the context the model saw, its output items
    (built-in tool calls and a message, or one function call) and how the response ends."""

    def __init__(
        self,
        request: dict[str, Any],
        n: int,
        behaviour: Behaviour,
        prior: list[dict[str, Any]],
        planned: set[str],
    ) -> None:
        self.request = request
        self.rid = f"resp_fake_{n}"
        self.created_at = int(time.time())
        self.input = _input_items(request.get("input"))
        self.context = prior + self.input  # what a later response continues from (+ output)
        instructions = request.get("instructions")
        lead = [_message_item("developer", instructions)] if isinstance(instructions, str) else []
        self.seen = lead + self.context
        self.input_tokens = _items_tokens(self.seen)
        self.status = "completed"
        self.reason: str | None = None  # incomplete_details.reason
        self.output: list[dict[str, Any]] = []
        self.pieces: list[str] = []  # what the deltas of the last output item carry
        self.output_tokens = 0

        kind = behaviour.kind
        turns = _item_turns(self.context)
        question = _question(turns)
        tools = request.get("tools") if isinstance(request.get("tools"), list) else []
        choice = request.get("tool_choice")
        function = _chosen_tool(_function_tools(tools, nested=False), choice)
        self.twice = kind == "tool_twice" or any(
            turn.call_id in planned for turn in _latest_results(turns)
        )
        if _wants_call(turns, function, kind, self.twice):
            assert function is not None
            arguments = _arguments(function, question)
            self.output.append(
                {
                    "id": f"fc_fake_{n}_0",
                    "type": "function_call",
                    "status": "completed",
                    "arguments": arguments,
                    "call_id": f"call_fake_{n}_0",
                    "name": function["name"],
                }
            )
            self.pieces = _halves(arguments)
            self.output_tokens = len(arguments.split())
            return

        refusal = _refusal_text(behaviour)
        include = request.get("include") if isinstance(request.get("include"), list) else []
        offered = {tool.get("type") for tool in tools if isinstance(tool, dict)}
        if refusal is None and choice != "none":
            self._builtin_calls(tools, include, question, n)
        text_config = request.get("text")
        text_format = text_config.get("format") if isinstance(text_config, dict) else None
        if refusal is not None:
            text = refusal
        elif isinstance(text_format, dict) and text_format.get("type") == "json_schema":
            text = json.dumps(
                _schema_value(text_format.get("schema"), question), ensure_ascii=False
            )
        else:
            text = ANSWER_PREFIX + question + _tool_said(turns)
        pieces = _split_pieces(text)
        limit = request.get("max_output_tokens")
        words = _WORD_RE.findall(text)
        if kind in ("incomplete", "content_filter"):
            pieces = pieces[: int(behaviour.opts.get("after_chunks", 1))]
            text = "".join(pieces)
            self.status, self.reason = "incomplete", _incomplete_reason(behaviour)
        elif isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(words):
            text = "".join(words[:limit]).rstrip()
            pieces = _split_pieces(text)
            self.status, self.reason = "incomplete", "max_output_tokens"
        self.pieces = pieces
        self.output_tokens = len(text.split())
        if refusal is not None:
            part: dict[str, Any] = {"type": "refusal", "refusal": text}
        else:
            annotations = []
            if choice != "none" and offered & WEB_SEARCH_TOOLS:
                start = len(ANSWER_PREFIX) if text.startswith(ANSWER_PREFIX) else 0
                slug = _SLUG_RE.sub("-", question.lower()).strip("-") or "result"
                annotations.append(
                    {
                        "type": "url_citation",
                        "start_index": min(start, len(text)),
                        "end_index": len(text),
                        "title": f"Search result for: {question}",
                        "url": f"https://example.test/{slug}",
                    }
                )
            if choice != "none" and "file_search" in offered:
                annotations.append(
                    {
                        "type": "file_citation",
                        "file_id": CITED_FILE_ID,
                        "filename": CITED_FILENAME,
                        "index": len(text),
                    }
                )
            part = {"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}
        self.output.append(
            {
                "id": f"msg_fake_{n}_{len(self.output)}",
                "type": "message",
                "status": self.status,
                "content": [part],
                "role": "assistant",
            }
        )

    def _builtin_calls(self, tools: list[Any], include: list[Any], question: str, n: int) -> None:
        """A call item for each built-in tool offered (once each, in the order offered)."""
        done: set[Any] = set()
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, dict) else None
            kind = "web_search" if kind in WEB_SEARCH_TOOLS else kind
            if kind in done:
                continue
            done.add(kind)
            index = len(self.output)
            if kind == "web_search":
                slug = _SLUG_RE.sub("-", question.lower()).strip("-") or "result"
                action: dict[str, Any] = {"type": "search", "query": question}
                if "web_search_call.action.sources" in include:
                    action["sources"] = [{"type": "url", "url": f"https://example.test/{slug}"}]
                self.output.append(
                    {
                        "id": f"ws_fake_{n}_{index}",
                        "type": "web_search_call",
                        "status": "completed",
                        "action": action,
                    }
                )
            elif kind == "file_search":
                results = None
                if "file_search_call.results" in include:
                    results = [
                        {
                            "attributes": {},
                            "file_id": CITED_FILE_ID,
                            "filename": CITED_FILENAME,
                            "score": 0.9,
                            "text": question,
                        }
                    ]
                self.output.append(
                    {
                        "id": f"fs_fake_{n}_{index}",
                        "type": "file_search_call",
                        "status": "completed",
                        "queries": [question],
                        "results": results,
                    }
                )
            elif kind == "code_interpreter":
                container = tool.get("container")
                outputs = None
                if "code_interpreter_call.outputs" in include:
                    outputs = [{"type": "logs", "logs": question}]
                self.output.append(
                    {
                        "id": f"ci_fake_{n}_{index}",
                        "type": "code_interpreter_call",
                        "status": "completed",
                        "code": f"print({json.dumps(question, ensure_ascii=False)})",
                        "container_id": container
                        if isinstance(container, str)
                        else f"cntr_fake_{n}",
                        "outputs": outputs,
                    }
                )

    @property
    def call(self) -> dict[str, Any] | None:
        """The function call this response makes, if it makes one."""
        last = self.output[-1]
        return last if last["type"] == "function_call" else None

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The Response object in a given state."""
        request = self.request
        text = request.get("text") if isinstance(request.get("text"), dict) else {}
        conversation = request.get("conversation")
        if isinstance(conversation, dict):
            conversation = conversation.get("id")
        return {
            "id": self.rid,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": bool(request.get("background", False)),
            "completed_at": self.created_at if status == "completed" else None,
            "conversation": {"id": conversation} if conversation else None,
            "error": error,
            "incomplete_details": {"reason": self.reason} if status == "incomplete" else None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "max_tool_calls": request.get("max_tool_calls"),
            "model": request.get("model", "fake-model"),
            "output": output,
            "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": request.get("previous_response_id"),
            "prompt_cache_key": request.get("prompt_cache_key"),
            "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
            "safety_identifier": request.get("safety_identifier"),
            "service_tier": "default",
            "store": request.get("store", True) is not False,
            "temperature": request.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium", **text},
            "tool_choice": request.get("tool_choice", "auto"),
            "tools": request.get("tools") or [],
            "top_logprobs": request.get("top_logprobs", 0),
            "top_p": request.get("top_p", 1.0),
            "truncation": request.get("truncation", "disabled"),
            "usage": usage,
            "user": request.get("user"),
            "metadata": request.get("metadata") or {},
        }

    def events(self) -> list[dict[str, Any]]:
        """Every event of the stream but the last (``response.completed`` or
        ``response.incomplete``; see :meth:`final`), without sequence numbers."""
        started = self.response("in_progress", [], None)
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
        ]
        for index, item in enumerate(self.output):
            at = {"item_id": item["id"], "output_index": index}
            kind = item["type"]
            if kind == "message":
                part = item["content"][0]
                added = {**item, "status": "in_progress", "content": []}
                events.append(
                    {"type": "response.output_item.added", "output_index": index, "item": added}
                )
                if part["type"] == "refusal":
                    empty: dict[str, Any] = {"type": "refusal", "refusal": ""}
                else:
                    empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                events.append(
                    {"type": "response.content_part.added", **at, "content_index": 0, "part": empty}
                )
                if part["type"] == "refusal":
                    events += [
                        {"type": "response.refusal.delta", **at, "content_index": 0, "delta": p}
                        for p in self.pieces
                    ]
                    events.append(
                        {
                            "type": "response.refusal.done",
                            **at,
                            "content_index": 0,
                            "refusal": part["refusal"],
                        }
                    )
                else:
                    events += [
                        {
                            "type": "response.output_text.delta",
                            **at,
                            "content_index": 0,
                            "delta": p,
                            "logprobs": [],
                        }
                        for p in self.pieces
                    ]
                    events += [
                        {
                            "type": "response.output_text.annotation.added",
                            **at,
                            "content_index": 0,
                            "annotation_index": j,
                            "annotation": annotation,
                        }
                        for j, annotation in enumerate(part["annotations"])
                    ]
                    events.append(
                        {
                            "type": "response.output_text.done",
                            **at,
                            "content_index": 0,
                            "text": part["text"],
                            "logprobs": [],
                        }
                    )
                events.append(
                    {"type": "response.content_part.done", **at, "content_index": 0, "part": part}
                )
            elif kind == "function_call":
                added = {**item, "status": "in_progress", "arguments": ""}
                events.append(
                    {"type": "response.output_item.added", "output_index": index, "item": added}
                )
                events += [
                    {"type": "response.function_call_arguments.delta", **at, "delta": p}
                    for p in self.pieces
                ]
                events.append(
                    {
                        "type": "response.function_call_arguments.done",
                        **at,
                        "arguments": item["arguments"],
                    }
                )
            else:  # a built-in tool's call
                added = {**item, "status": "in_progress"}
                events.append(
                    {"type": "response.output_item.added", "output_index": index, "item": added}
                )
            events.append(
                {"type": "response.output_item.done", "output_index": index, "item": item}
            )
        return events

    def final(self, usage: dict[str, Any] | None) -> dict[str, Any]:
        """The stream's last event: ``response.completed`` or ``response.incomplete``."""
        return {
            "type": f"response.{self.status}",
            "response": self.response(self.status, self.output, usage),
        }


class FakeOpenAIServer:
    """Fake OpenAI server on 127.0.0.1, run by uvicorn in a background thread.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). Settings are plain
    attributes and may be changed while the server runs:

    - ``latency_s``: delay before the first byte of every answer (not of rate-limit refusals).
    - ``send_usage``: False = never send usage, even when the request asks for it.
    - ``usage_on_content_chunks``: put a running usage object on every content chunk (as some
      providers do) instead of a final usage-only chunk; sent whether or not asked for.
    - ``rate_limit_per_s``: None, or a rate above which requests get a 429 with a
      ``retry-after-ms`` header (token bucket holding ``max(1, rate)`` tokens).
    - ``record_requests``: False = do not keep request bodies in ``requests``.
    - ``ignore_n``: True = answer once whatever ``n`` asks for (as Ollama does).
    - ``batch_polls``, ``batch_fail_lines``, ``batch_end``, ``batch_expire_after``: how
      batches go (see the module docstring).

    ``requests``, ``arrivals`` and ``request_count`` cover the model requests (``POST`` to
    ``/v1/chat/completions`` and ``/v1/responses``); ``path_counts`` counts every request by
    ``"METHOD /path"``; :meth:`context_of` gives the items the model saw for a response.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        latency_s: float = 0.0,
        send_usage: bool = True,
        usage_on_content_chunks: bool = False,
        rate_limit_per_s: float | None = None,
        record_requests: bool = True,
    ) -> None:
        self.latency_s = latency_s
        self.send_usage = send_usage
        self.usage_on_content_chunks = usage_on_content_chunks
        self.rate_limit_per_s = rate_limit_per_s
        self.record_requests = record_requests
        self.ignore_n = False
        self.batch_polls = 0
        self.batch_fail_lines: set[int] = set()
        self.batch_end = "completed"
        self.batch_expire_after = 0

        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # time.time() as each request's body was read
        self.request_count = 0
        self.rate_limited_count = 0
        self.in_flight = 0  # requests being answered right now
        self.max_in_flight = 0  # the most answered at once since the last reset
        self.path_counts: collections.Counter[str] = collections.Counter()

        self._lock = threading.Lock()
        # Responses API state: stored responses, the context each continues from, the items
        # the model saw for each, conversations, and the calls made under "tool_twice".
        self._responses: dict[str, dict[str, Any]] = {}
        self._contexts: dict[str, list[dict[str, Any]]] = {}
        self._seen: dict[str, list[dict[str, Any]]] = {}
        self._conversations: dict[str, dict[str, Any]] = {}
        self._conversation_items: dict[str, list[dict[str, Any]]] = {}
        self._planned: set[str] = set()
        self._item_count = 0
        # Batch API state: files (their object and bytes), batches, and how often each batch
        # was retrieved while it ran.
        self._files: dict[str, dict[str, Any]] = {}
        self._file_data: dict[str, bytes] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._batch_polls: dict[str, int] = {}
        self._batch_lines = 0
        self._queue: collections.deque[Behaviour] = collections.deque()
        self._bucket_rate: float | None = None
        self._bucket_tokens = 0.0
        self._bucket_t = 0.0
        self._stopping = False

        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it Nagle + delayed ACKs cap a connection at ~25 req/s.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind(("127.0.0.1", port))
        except OSError:
            self._sock.close()
            raise
        self.port: int = int(self._sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None

    # ------------------------------------------------------------------ control

    def enqueue(self, *behaviours: Behaviour | str) -> None:
        """Append scripted behaviours; each request pops one (FIFO)."""
        items = [Behaviour.coerce(b) for b in behaviours]
        with self._lock:
            self._queue.extend(items)

    @property
    def pending(self) -> int:
        """Number of scripted behaviours not yet used."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget requests, scripted behaviours, stored responses and conversations; restore
        default settings."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.arrivals.clear()
            self.request_count = 0
            self.rate_limited_count = 0
            self.max_in_flight = 0
            self.path_counts.clear()
            self._bucket_rate = None
            self._responses.clear()
            self._contexts.clear()
            self._seen.clear()
            self._conversations.clear()
            self._conversation_items.clear()
            self._planned.clear()
            self._item_count = 0
            self._files.clear()
            self._file_data.clear()
            self._batches.clear()
            self._batch_polls.clear()
            self._batch_lines = 0
        self.batch_polls = 0
        self.batch_fail_lines = set()
        self.batch_end = "completed"
        self.batch_expire_after = 0
        self.latency_s = 0.0
        self.send_usage = True
        self.usage_on_content_chunks = False
        self.ignore_n = False
        self.rate_limit_per_s = None

    def context_of(self, response_id: str) -> list[dict[str, Any]]:
        """The items the model saw for a response (stored or not): its instructions as a
        developer message, the context it continued from, then the request's input items."""
        with self._lock:
            if response_id not in self._seen:
                raise KeyError(f"no response {response_id!r} was made")
            return json.loads(_DUMPS(self._seen[response_id]))

    def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's items, oldest first."""
        with self._lock:
            return json.loads(_DUMPS(self._conversation_items[conversation_id]))

    def batches_made(self) -> list[dict[str, Any]]:
        """Every batch created, oldest first, as a retrieve would give it now."""
        with self._lock:
            return json.loads(_DUMPS(list(self._batches.values())))

    def file_content(self, file_id: str) -> bytes:
        """The bytes of an uploaded or generated file."""
        with self._lock:
            return self._file_data[file_id]

    def _config(self, log_config: Any) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            interface="asgi3",
            lifespan="off",
            proxy_headers=False,
            access_log=False,
            log_level="warning",
            log_config=log_config,
            timeout_graceful_shutdown=2,
            server_header=False,
            backlog=BACKLOG,
        )

    def start(self) -> FakeOpenAIServer:
        """Start serving in a daemon thread; return once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._stopping = False
        # uvicorn's asyncio server listens again with config.backlog; listening here first means
        # no connect is refused in the moment before it does.
        self._sock.listen(BACKLOG)
        self._server = uvicorn.Server(self._config(log_config=None))
        self._thread = threading.Thread(target=self._run_thread, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not self._server.started:
            if self._thread_error is not None or not self._thread.is_alive():
                self._thread.join(timeout=1.0)
                self._thread = None
                raise RuntimeError("fake OpenAI server failed to start") from self._thread_error
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fake OpenAI server did not start within 10 s")
            time.sleep(0.005)
        return self

    def _run_thread(self) -> None:
        assert self._server is not None
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # surfaced by start()
            self._thread_error = exc

    def stop(self) -> None:
        """Stop the server and wait for its thread to end (idempotent)."""
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15.0)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_foreground(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the current (main) thread until SIGINT/SIGTERM."""
        server = uvicorn.Server(self._config(log_config=uvicorn.config.LOGGING_CONFIG))
        self._server = server
        self._sock.listen(BACKLOG)

        async def _main() -> None:
            task = asyncio.create_task(server.serve(sockets=[self._sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.005)
            if server.started and on_ready is not None:
                on_ready()
            await task

        try:
            asyncio.run(_main())
        finally:
            self._stopping = True
            self._sock.close()

    # ------------------------------------------------------------------ helpers

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early if the server is stopping."""
        if seconds <= 0:
            return
        if seconds <= 0.05:
            await asyncio.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while not self._stopping:
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    def _take_token(self) -> float | None:
        """Rate limiter: None when allowed, else seconds until a token is available."""
        rate = self.rate_limit_per_s
        if rate is None or rate <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            capacity = max(1.0, float(rate))
            if self._bucket_rate != rate:
                self._bucket_rate = rate
                self._bucket_tokens = capacity
                self._bucket_t = now
            self._bucket_tokens = min(capacity, self._bucket_tokens + (now - self._bucket_t) * rate)
            self._bucket_t = now
            if self._bucket_tokens >= 1.0:
                self._bucket_tokens -= 1.0
                return None
            return (1.0 - self._bucket_tokens) / rate

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else _OK

    @staticmethod
    async def _respond(
        send: Send,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        all_headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        if headers:
            all_headers.extend(headers)
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # ------------------------------------------------------------------ ASGI app

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break

        path = scope["path"].rstrip("/")
        method = scope["method"]
        with self._lock:
            self.path_counts[f"{method} {path}"] += 1
        if path == "/v1/models" and method == "GET":
            body = {
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}],
            }
            await self._respond(send, 200, _DUMPS(body).encode())
            return
        if path.startswith(("/v1/files", "/v1/batches")):
            await self._batch_route(send, method, path, scope, b"".join(chunks))
            return
        if path.startswith("/v1/conversations") or (
            path.startswith("/v1/responses/") and method == "GET"
        ):
            status, payload = self._state_route(
                method, path, scope.get("query_string", b""), b"".join(chunks)
            )
            await self._respond(send, status, payload)
            return
        if path not in ("/v1/chat/completions", "/v1/responses"):
            msg = f"Invalid URL ({method} {scope['path']})"
            await self._respond(send, 404, _error_body(msg, "invalid_request_error", None))
            return
        if method != "POST":
            msg = f"Method {method} not allowed"
            await self._respond(send, 405, _error_body(msg, "invalid_request_error", None))
            return

        raw = b"".join(chunks)
        try:
            request = json.loads(raw) if raw else None
        except ValueError:
            request = None
        with self._lock:
            self.request_count += 1
            n = self.request_count
            if self.record_requests and isinstance(request, dict):
                self.requests.append(request)
                self.arrivals.append(time.time())
        if not isinstance(request, dict):
            await self._respond(send, 400, _UNPARSEABLE)
            return

        wait = self._take_token()
        if wait is not None:
            with self._lock:
                self.rate_limited_count += 1
            msg = f"Rate limit reached: limit {self.rate_limit_per_s} requests per second."
            headers = [(b"retry-after-ms", str(max(1, math.ceil(wait * 1000))).encode())]
            body = _error_body(msg, "requests", "rate_limit_exceeded")
            await self._respond(send, 429, body, headers)
            return

        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if path == "/v1/responses":
                await self._answer_response(receive, send, request, n)
            else:
                await self._answer(receive, send, request, n)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, receive: Any, send: Any, request: dict[str, Any], n: int) -> None:
        problem = _chat_problem(request)
        if problem is not None:
            await self._respond(send, 400, problem)
            return
        behaviour = self._next_behaviour()
        kind = behaviour.kind
        if kind == "hang":
            await self._hang(receive, float(behaviour.opts.get("hang_s", 30.0)))
            return

        if self.latency_s:
            await self._sleep(self.latency_s)

        if kind == "failed":  # a generation that fails reaches a chat client as a server error
            await self._error(send, request, Behaviour("500"))
        elif kind in ANSWERING and request.get("stream"):
            await self._stream(send, request, behaviour, n)
        elif kind in ANSWERING and kind != "stream_error":
            await self._complete(send, request, behaviour, n)
        else:
            await self._error(send, request, behaviour)

    async def _hang(self, receive: Receive, hang_s: float) -> None:
        end = time.monotonic() + min(max(hang_s, 0.0), MAX_HANG_S)
        while not self._stopping:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                message = await asyncio.wait_for(receive(), timeout=min(left, 0.1))
            except TimeoutError:
                continue
            if message["type"] == "http.disconnect":
                return
        # Close without a response. uvicorn's receive() is a bound method of the request
        # cycle, which holds the transport; failing that, raising makes uvicorn answer a
        # bare 500 with "connection: close".
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
        if transport is None:
            raise _Abort("hang over")
        transport.close()
        for _ in range(3):  # let connection_lost() run so uvicorn sees the disconnect
            await asyncio.sleep(0)

    async def _error(self, send: Send, request: dict[str, Any], behaviour: Behaviour) -> None:
        kind = behaviour.kind
        headers: list[tuple[bytes, bytes]] = []
        if kind == "429":
            status = 429
            body = _error_body(
                "Rate limit reached for requests. Please try again later.",
                "requests",
                "rate_limit_exceeded",
            )
            if "retry_after_ms" in behaviour.opts:
                headers.append((b"retry-after-ms", str(behaviour.opts["retry_after_ms"]).encode()))
            if "retry_after" in behaviour.opts:
                headers.append((b"retry-after", str(behaviour.opts["retry_after"]).encode()))
        elif kind == "quota":
            status = 429
            body = _error_body(QUOTA_MESSAGE, "insufficient_quota", "insufficient_quota")
        elif kind == "stream_error":  # asked for without streaming
            status = 500
            body = _error_body(STREAM_ERROR_MESSAGE, "server_error", None)
        elif kind == "500":
            status = 500
            body = _error_body(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            )
        elif kind == "503":
            status = 503
            body = _error_body(
                "The engine is currently overloaded, please try again later.",
                "server_error",
                "service_unavailable",
            )
        elif kind == "401":
            status = 401
            body = _error_body(
                "Incorrect API key provided. You can find your API key in your account settings.",
                "invalid_request_error",
                "invalid_api_key",
            )
        elif kind == "400_context":
            status = 400
            messages = request.get("messages")
            if isinstance(messages, list) or "input" not in request:
                used = _prompt_tokens(messages if isinstance(messages, list) else [])
                param = "messages"
            else:
                used = _items_tokens(_input_items(request.get("input")))
                param = "input"
            body = _error_body(
                "This model's maximum context length is 128000 tokens. However, your messages "
                f"resulted in {128000 + used} tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                "context_length_exceeded",
                param=param,
            )
        else:  # pragma: no cover - KINDS and the dispatch in app() are kept in step
            raise AssertionError(kind)
        await self._respond(send, status, body, headers)

    def _wants_usage(self, behaviour: Behaviour) -> bool:
        return self.send_usage and behaviour.kind != "no_usage"

    def _chat_call(
        self, request: dict[str, Any], behaviour: Behaviour, n: int
    ) -> tuple[str, str, str] | None:
        """(function name, arguments, call id prefix) when the model calls a function."""
        messages = request.get("messages")
        turns = _chat_turns(messages if isinstance(messages, list) else [])
        tools = _function_tools(request.get("tools"), nested=True)
        tool = _chosen_tool(tools, request.get("tool_choice"))
        latest = {turn.call_id for turn in _latest_results(turns)}
        with self._lock:
            twice = behaviour.kind == "tool_twice" or bool(latest & self._planned)
        if not _wants_call(turns, tool, behaviour.kind, twice):
            return None
        assert tool is not None
        prefix = f"call_fake_{n}"
        if twice:
            count = 1 if self.ignore_n else _choice_count(request)
            with self._lock:
                self._planned.update(f"{prefix}_{i}" for i in range(count))
        return tool["name"], _arguments(tool, _question(turns)), prefix

    async def _complete(
        self, send: Send, request: dict[str, Any], behaviour: Behaviour, n: int
    ) -> None:
        call = self._chat_call(request, behaviour, n)
        answer = _Answer(request, _refusal_text(behaviour), self.ignore_n, call)
        kind = behaviour.kind
        if kind == "slow_stream":
            gap = float(behaviour.opts.get("gap_s", 0.2))
            await self._sleep(gap * max(len(choice.pieces) for choice in answer.choices))
        cuts = ("no_done", "content_filter", "incomplete")
        after = _after_chunks(behaviour) if kind in cuts else None
        choices = []
        completion_tokens = 0
        for choice in answer.choices:
            text, words = choice.text, choice.words
            finish: str | None = choice.finish_reason
            if after is not None:
                sent = (choice.pieces or [""])[:after]
                text, words = "".join(sent), _word_count(sent)
            if kind in ("content_filter", "incomplete"):
                finish = _cut_finish(behaviour)
            elif kind == "no_done" and not behaviour.opts.get("finish"):
                finish = None
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if answer.refusal else text,
                "refusal": text if answer.refusal else None,
                "annotations": [],
            }
            if choice.call is not None:
                function = {"name": choice.call[1], "arguments": text}
                tool_call = {"id": choice.call[0], "type": "function", "function": function}
                message = {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [tool_call],
                    "annotations": [],
                }
            choices.append(
                {
                    "index": choice.index,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            )
            completion_tokens += words
        payload: dict[str, Any] = {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "fake-model"),
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if self._wants_usage(behaviour):
            payload["usage"] = answer.usage(completion_tokens)
        body = _DUMPS(payload).encode()
        if kind == "malformed":
            await self._respond(send, 200, b"{not json")
        elif kind == "cut":
            headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            raise _Abort("cut")
        else:
            await self._respond(send, 200, body)

    async def _stream(
        self, send: Send, request: dict[str, Any], behaviour: Behaviour, n: int
    ) -> None:
        call = self._chat_call(request, behaviour, n)
        answer = _Answer(request, _refusal_text(behaviour), self.ignore_n, call)
        kind = behaviour.kind
        wants_usage = self._wants_usage(behaviour)
        on_chunks = wants_usage and self.usage_on_content_chunks
        opts = request.get("stream_options")
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        final_usage = wants_usage and include_usage and not on_chunks
        gap = float(behaviour.opts.get("gap_s", 0.2)) if kind == "slow_stream" else 0.0
        after = _after_chunks(behaviour)

        base = (
            f'{{"id":"chatcmpl-fake-{n}","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{_DUMPS(request.get("model", "fake-model"))},'
            f'"system_fingerprint":"{SYSTEM_FINGERPRINT}",'
        )
        null_usage = ',"usage":null' if final_usage else ""

        def chunk(
            index: int, delta: dict[str, Any], finish: str | None, usage: Any = None
        ) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            tail = f',"usage":{_DUMPS(usage)}' if usage is not None else null_usage
            return f'data: {base}"choices":[{_DUMPS(choice)}]{tail}}}\n\n'.encode()

        # Each choice's role chunk, and what follows it: (delta, finish_reason, words) per chunk.
        key = "refusal" if answer.refusal else "content"
        plans: list[list[tuple[dict[str, Any], str | None, int]]] = []
        roles: list[dict[str, Any]] = []
        for choice in answer.choices:
            pieces = choice.pieces or [""]
            sent = pieces if after is None else pieces[:after]
            if choice.call is not None:
                # As OpenAI streams a call: the role chunk names it, the arguments follow, and
                # an empty delta carries the finish_reason.
                function = {"name": choice.call[1], "arguments": ""}
                opening = {
                    "index": 0,
                    "id": choice.call[0],
                    "type": "function",
                    "function": function,
                }
                roles.append(
                    {"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}
                )
                plan = [
                    (
                        {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
                        None,
                        _piece_words(pieces, j),
                    )
                    for j, piece in enumerate(sent)
                ]
                if kind == "no_done":
                    finished = bool(behaviour.opts.get("finish"))
                else:
                    finished = kind != "stream_error" and len(sent) == len(pieces)
                if finished:
                    plan.append(({}, choice.finish_reason, 0))
                plans.append(plan)
                continue
            if kind == "no_done":
                finish_at = len(sent) - 1 if behaviour.opts.get("finish") else -1
            elif kind in ("refusal", "content_filter", "incomplete", "stream_error"):
                finish_at = -1
            else:  # a cut stream ends with the answer's last piece, if it gets that far
                finish_at = len(pieces) - 1
            plan = [
                ({key: piece}, choice.finish_reason if j == finish_at else None, len(piece.split()))
                for j, piece in enumerate(sent)
            ]
            if kind == "refusal":
                plan.append(({}, choice.finish_reason, 0))
            elif kind in ("content_filter", "incomplete"):
                plan.append(({}, _cut_finish(behaviour), 0))
            plans.append(plan)
            if answer.refusal:
                roles.append({"role": "assistant", "content": None, "refusal": ""})
            else:
                roles.append({"role": "assistant", "content": "", "refusal": None})

        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

        async def emit(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await emit(chunk(0, roles[0], None))
        words_sent = 0
        for r in range(max(len(plan) for plan in plans)):
            if gap:
                await self._sleep(gap)
            for choice, plan in zip(answer.choices, plans, strict=True):
                if r == 0 and choice.index > 0:
                    await emit(chunk(choice.index, roles[choice.index], None))
                if r >= len(plan):
                    continue
                delta, finish, words = plan[r]
                words_sent += words
                usage = answer.usage(words_sent) if on_chunks else None
                await emit(chunk(choice.index, delta, finish, usage))
                if r == 0 and choice.index == 0 and kind == "malformed":
                    await emit(b"data: {not json\n\n")
                if r == 0 and choice.index == 0 and kind == "bad_shape":
                    await emit(f'data: {base}"choices":"not a list"}}\n\n'.encode())
        if kind == "cut":
            raise _Abort("cut")
        usage_chunk = f'data: {base}"choices":[],"usage":{_DUMPS(answer.usage(words_sent))}}}\n\n'
        if kind == "stream_error":
            event = b"data: " + _error_body(STREAM_ERROR_MESSAGE, "server_error", None) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": False})
        elif kind == "no_done":
            if final_usage and behaviour.opts.get("finish"):
                await emit(usage_chunk.encode())
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            tail = usage_chunk.encode() if final_usage else b""
            await send({"type": "http.response.body", "body": tail + _DONE, "more_body": False})

    # ------------------------------------------------------------------ Responses API

    def _response_problem(self, request: dict[str, Any]) -> tuple[int, bytes] | None:
        """The error OpenAI answers a malformed Responses request with, else None."""
        for key in request:
            if key not in RESPONSE_PARAMS:
                msg = f"Unsupported parameter: '{key}'."
                return 400, _error_body(msg, "invalid_request_error", "unsupported_parameter", key)
        if not isinstance(request.get("model"), str):
            body = _error_body(
                "Missing required parameter: 'model'.",
                "invalid_request_error",
                "missing_required_parameter",
                "model",
            )
            return 400, body
        for param, kinds, expected in _SHAPES:
            if request.get(param) is not None and not isinstance(request[param], kinds):
                got = _JSON_TYPES.get(type(request[param]), "another type")
                msg = f"Invalid type for '{param}': expected {expected}, but got {got} instead."
                return 400, _error_body(msg, "invalid_request_error", "invalid_type", param)
        tools = request.get("tools")
        for i, tool in enumerate(tools if isinstance(tools, list) else []):
            if isinstance(tool, dict) and tool.get("type") == "function" and "name" not in tool:
                param = f"tools[{i}].name"
                msg = f"Missing required parameter: '{param}'."
                body = _error_body(
                    msg, "invalid_request_error", "missing_required_parameter", param
                )
                return 400, body
        previous = request.get("previous_response_id")
        conversation = request.get("conversation")
        if isinstance(conversation, dict):
            conversation = conversation.get("id")
        if previous is not None and conversation is not None:
            msg = (
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'."
            )
            return 400, _error_body(msg, "invalid_request_error", "mutually_exclusive_parameters")
        with self._lock:
            if previous is not None and previous not in self._contexts:
                msg = f"Previous response with id '{previous}' not found."
                code = "previous_response_not_found"
                body = _error_body(msg, "invalid_request_error", code, "previous_response_id")
                return 400, body
            if conversation is not None and conversation not in self._conversations:
                msg = f"Conversation with id '{conversation}' not found."
                return 404, _error_body(msg, "invalid_request_error", None, "conversation")
            prior = self._prior_context(request)
        problem = _context_problem(prior + _input_items(request.get("input")))
        return None if problem is None else (400, problem)

    def _prior_context(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The items a request continues from (call with the lock held)."""
        previous = request.get("previous_response_id")
        if previous is not None:
            return list(self._contexts[previous])
        conversation = request.get("conversation")
        if isinstance(conversation, dict):
            conversation = conversation.get("id")
        if conversation is not None:
            return list(self._conversation_items[conversation])
        return []

    def _stored_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """An input item as a conversation keeps it: with an id, and a status (call with the
        lock held)."""
        stored = dict(item)
        kind = stored.get("type")
        if "id" not in stored:
            self._item_count += 1
            prefix = {"message": "msg", "function_call_output": "fco"}.get(str(kind), "item")
            stored["id"] = f"{prefix}_fake_in{self._item_count}"
        if kind in ("message", "function_call_output", "function_call"):
            stored.setdefault("status", "completed")
        return stored

    async def _answer_response(
        self, receive: Receive, send: Send, request: dict[str, Any], n: int
    ) -> None:
        problem = self._response_problem(request)
        if problem is not None:
            await self._respond(send, *problem)
            return
        behaviour = self._next_behaviour()
        kind = behaviour.kind
        if kind == "hang":
            await self._hang(receive, float(behaviour.opts.get("hang_s", 30.0)))
            return
        if self.latency_s:
            await self._sleep(self.latency_s)
        stream = bool(request.get("stream"))
        if kind not in ANSWERING or (kind == "stream_error" and not stream):
            await self._error(send, request, behaviour)
            return
        with self._lock:
            exchange = _Exchange(request, n, behaviour, self._prior_context(request), self._planned)
            self._seen[exchange.rid] = exchange.seen
            call = exchange.call
            if call is not None and exchange.twice:
                self._planned.add(call["call_id"])
        if stream:
            await self._stream_response(send, exchange, behaviour)
        else:
            await self._complete_response(send, exchange, behaviour)

    def _commit(self, exchange: _Exchange, response: dict[str, Any]) -> None:
        """Keep a finished response: for GET, and (completed or incomplete) to be continued
        from and in its conversation."""
        request = exchange.request
        with self._lock:
            if response["store"]:
                self._responses[exchange.rid] = response
            if response["status"] not in ("completed", "incomplete"):
                return
            if response["store"]:
                self._contexts[exchange.rid] = exchange.context + response["output"]
            conversation = response["conversation"]
            if conversation is not None:
                items = self._conversation_items[conversation["id"]]
                items += [self._stored_item(item) for item in _input_items(request.get("input"))]
                items += response["output"]

    def _usage_for(self, exchange: _Exchange, behaviour: Behaviour, words: int) -> Any:
        if not self._wants_usage(behaviour):
            return None
        return _usage(exchange.input_tokens, words)

    async def _complete_response(
        self, send: Send, exchange: _Exchange, behaviour: Behaviour
    ) -> None:
        kind = behaviour.kind
        if kind == "slow_stream":
            await self._sleep(float(behaviour.opts.get("gap_s", 0.2)) * len(exchange.pieces))
        usage = self._usage_for(exchange, behaviour, exchange.output_tokens)
        if kind == "failed":
            error = {"code": "server_error", "message": FAILED_MESSAGE}
            response = exchange.response(
                "failed", [], self._usage_for(exchange, behaviour, 0), error
            )
        elif kind == "no_done":
            response = exchange.response("in_progress", exchange.output, usage)
        else:
            response = exchange.final(usage)["response"]
        body = _DUMPS(response).encode()
        if kind == "malformed":
            await self._respond(send, 200, b"{not json")
        elif kind == "cut":
            headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            raise _Abort("cut")
        else:
            if kind != "no_done":
                self._commit(exchange, response)
            await self._respond(send, 200, body)

    async def _stream_response(self, send: Send, exchange: _Exchange, behaviour: Behaviour) -> None:
        kind = behaviour.kind
        opts = behaviour.opts
        events = exchange.events()
        deltas = [i for i, e in enumerate(events) if e["type"].endswith(".delta")]

        def through(k: int) -> int:
            """How many events make it to the k-th delta (k = 0: to the first output item)."""
            if k <= 0:
                starts = [
                    i for i, e in enumerate(events) if e["type"] == "response.output_item.added"
                ]
                return starts[0] if starts else len(events)
            return deltas[k - 1] + 1 if k <= len(deltas) else len(events)

        last: dict[str, Any] | None = None  # the event that ends the stream, if one does
        if kind == "cut":
            head = events[: through(int(opts.get("after_chunks", 1)))]
        elif kind == "no_done":
            if opts.get("after_chunks") is not None:
                head = events[: through(int(opts["after_chunks"]))]
            elif opts.get("finish"):
                head = events
            else:
                head = events[: through(len(deltas))]
        elif kind == "stream_error":
            head = events[: through(1)]
            last = {"type": "error", "code": "server_error", "message": STREAM_ERROR_MESSAGE}
            last["param"] = None
        elif kind == "failed":
            head = events[: through(int(opts.get("after_chunks", 0)))]
        else:
            head = events

        words = sum(len(e["delta"].split()) for e in head if e["type"].endswith(".delta"))
        if kind == "failed":
            error = {"code": "server_error", "message": FAILED_MESSAGE}
            usage = self._usage_for(exchange, behaviour, words)
            response = exchange.response("failed", [], usage, error)
            last = {"type": "response.failed", "response": response}
        elif kind not in ("cut", "no_done", "stream_error"):
            last = exchange.final(self._usage_for(exchange, behaviour, exchange.output_tokens))
        gap = float(opts.get("gap_s", 0.2)) if kind == "slow_stream" else 0.0

        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        sequence = 0

        def frame(event: dict[str, Any]) -> bytes:
            nonlocal sequence
            data = _DUMPS({**event, "sequence_number": sequence})
            sequence += 1
            return f"event: {event['type']}\ndata: {data}\n\n".encode()

        async def emit(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        first_delta = True
        for event in head:
            delta = event["type"].endswith(".delta")
            if delta and gap:
                await self._sleep(gap)
            await emit(frame(event))
            if delta and first_delta:
                first_delta = False
                if kind == "malformed":
                    await emit(f"event: {event['type']}\ndata: {{not json\n\n".encode())
                elif kind == "bad_shape":
                    await emit(f'event: {event["type"]}\ndata: ["not", "an", "event"]\n\n'.encode())
        if kind == "cut":
            raise _Abort("cut")
        if last is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if "response" in last:
            self._commit(exchange, last["response"])
        await send({"type": "http.response.body", "body": frame(last), "more_body": False})

    # ------------------------------------------------------------------ stored state

    def _state_route(self, method: str, path: str, query: bytes, raw: bytes) -> tuple[int, bytes]:
        """Conversations and stored responses: (status, JSON body)."""
        parts = path.split("/")[2:]  # ["conversations", id, "items"] or ["responses", id]
        body = _json_object(raw)
        if body is None:
            return 400, _UNPARSEABLE
        with self._lock:
            if parts[0] == "responses" and len(parts) == 2:
                response = self._responses.get(parts[1])
                if response is None:
                    msg = f"Response with id '{parts[1]}' not found."
                    return 404, _error_body(msg, "invalid_request_error", None)
                return 200, _DUMPS(response).encode()
            if parts == ["conversations"] and method == "POST":
                for key in body:
                    if key not in ("items", "metadata"):
                        msg = f"Unsupported parameter: '{key}'."
                        code = "unsupported_parameter"
                        return 400, _error_body(msg, "invalid_request_error", code, key)
                conversation = {
                    "id": f"conv_fake_{len(self._conversations) + 1}",
                    "object": "conversation",
                    "created_at": int(time.time()),
                    "metadata": body.get("metadata") or {},
                }
                self._conversations[conversation["id"]] = conversation
                items = _input_items(body.get("items") or [])
                self._conversation_items[conversation["id"]] = [self._stored_item(i) for i in items]
                return 200, _DUMPS(conversation).encode()
            if len(parts) >= 2 and parts[0] == "conversations":
                conversation = self._conversations.get(parts[1])
                if conversation is None:
                    msg = f"Conversation with id '{parts[1]}' not found."
                    return 404, _error_body(msg, "invalid_request_error", None)
                items = self._conversation_items[parts[1]]
                if len(parts) == 2 and method == "GET":
                    return 200, _DUMPS(conversation).encode()
                if parts[2:] == ["items"] and method == "POST":
                    added = [self._stored_item(i) for i in _input_items(body.get("items") or [])]
                    items += added
                    return 200, _item_list(added, has_more=False)
                if parts[2:] == ["items"] and method == "GET":
                    params = urllib.parse.parse_qs(query.decode())
                    order = params.get("order", ["desc"])[0]
                    limit = int(params.get("limit", ["20"])[0])
                    listed = items if order == "asc" else items[::-1]
                    after = params.get("after", [None])[0]
                    if after is not None:
                        ids = [item["id"] for item in listed]
                        listed = listed[ids.index(after) + 1 :] if after in ids else []
                    return 200, _item_list(listed[:limit], has_more=len(listed) > limit)
        msg = f"Invalid URL ({method} {path})"
        return 404, _error_body(msg, "invalid_request_error", None)

    # ------------------------------------------------------------------ Batch API

    async def _batch_route(
        self, send: Send, method: str, path: str, scope: Scope, raw: bytes
    ) -> None:
        """Files and batches."""
        parts = path.split("/")[2:]  # ["files", id, "content"], ["batches", id, "cancel"], ...
        if parts[0] == "files" and parts[2:] == ["content"] and method == "GET":
            with self._lock:
                data = self._file_data.get(parts[1])
            if data is None:
                await self._respond(send, *_no_such("File", parts[1]))
                return
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(len(data)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": data, "more_body": False})
            return
        if parts == ["files"] and method == "POST":
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
            status, payload = self._upload(content_type, raw)
        elif parts[0] == "files" and len(parts) == 2 and method == "GET":
            with self._lock:
                found = self._files.get(parts[1])
            status, payload = (200, _DUMPS(found).encode()) if found else _no_such("File", parts[1])
        elif parts == ["batches"] and method == "POST":
            status, payload = self._create_batch(raw)
        elif parts[0] == "batches" and len(parts) == 2 and method == "GET":
            status, payload = await self._retrieve_batch(parts[1])
        elif parts[0] == "batches" and parts[2:] == ["cancel"] and method == "POST":
            status, payload = self._cancel_batch(parts[1])
        else:
            msg = f"Invalid URL ({method} {path})"
            status, payload = 404, _error_body(msg, "invalid_request_error", None)
        await self._respond(send, status, payload)

    def _store_file(self, filename: str, purpose: str, data: bytes) -> dict[str, Any]:
        """Keep a file (call with the lock held)."""
        created = int(time.time())
        file = {
            "id": f"file-fake{len(self._files) + 1}",
            "object": "file",
            "bytes": len(data),
            "created_at": created,
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": created + 30 * 86400,
            "status_details": None,
        }
        self._files[file["id"]] = file
        self._file_data[file["id"]] = data
        return file

    def _upload(self, content_type: bytes, raw: bytes) -> tuple[int, bytes]:
        head = b"Content-Type: " + content_type + b"\r\n\r\n"
        form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields: dict[str, tuple[str | None, bytes]] = {}
        if form.is_multipart():
            for part in form.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                fields[str(name)] = (
                    part.get_filename(),
                    payload if isinstance(payload, bytes) else b"",
                )
        for name in ("file", "purpose"):
            if name not in fields:
                msg = f"Missing required parameter: '{name}'."
                code = "missing_required_parameter"
                return 400, _error_body(msg, "invalid_request_error", code, name)
        purpose = fields["purpose"][1].decode()
        if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data"):
            msg = f"'{purpose}' is not one of the supported purposes."
            return 400, _error_body(msg, "invalid_request_error", None, "purpose")
        filename, data = fields["file"]
        with self._lock:
            file = self._store_file(filename or "upload", purpose, data)
        return 200, _DUMPS(file).encode()

    def _create_batch(self, raw: bytes) -> tuple[int, bytes]:
        body = _json_object(raw)
        if body is None:
            return 400, _UNPARSEABLE
        known = ("input_file_id", "endpoint", "completion_window", "metadata")
        for key in body:
            if key not in (*known, "output_expires_after"):
                msg = f"Unsupported parameter: '{key}'."
                return 400, _error_body(msg, "invalid_request_error", "unsupported_parameter", key)
        for key in known[:3]:
            if not isinstance(body.get(key), str):
                msg = f"Missing required parameter: '{key}'."
                code = "missing_required_parameter"
                return 400, _error_body(msg, "invalid_request_error", code, key)
        endpoint = body["endpoint"]
        if endpoint not in BATCH_ENDPOINTS:
            msg = (
                f"Invalid value: '{endpoint}'. Supported values are: {', '.join(BATCH_ENDPOINTS)}."
            )
            return 400, _error_body(msg, "invalid_request_error", "invalid_value", "endpoint")
        if body["completion_window"] != "24h":
            msg = f"Invalid value: '{body['completion_window']}'. Supported values are: '24h'."
            code = "invalid_value"
            return 400, _error_body(msg, "invalid_request_error", code, "completion_window")
        with self._lock:
            file = self._files.get(body["input_file_id"])
            if file is None:
                return _no_such("File", body["input_file_id"])
            if file["purpose"] != "batch":
                msg = f"File {file['id']} has purpose '{file['purpose']}', not 'batch'."
                return 400, _error_body(msg, "invalid_request_error", None, "input_file_id")
            lines, problems = _batch_lines(self._file_data[file["id"]], endpoint)
            created = int(time.time())
            batch: dict[str, Any] = {
                "id": f"batch_fake{len(self._batches) + 1}",
                "object": "batch",
                "endpoint": endpoint,
                "errors": None,
                "input_file_id": file["id"],
                "completion_window": "24h",
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": created,
                "in_progress_at": None,
                "expires_at": created + 86400,
                "finalizing_at": None,
                "completed_at": None,
                "failed_at": None,
                "expired_at": None,
                "cancelling_at": None,
                "cancelled_at": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
                "model": lines[0]["body"].get("model") if lines and not problems else None,
            }
            if problems:
                batch |= {"status": "failed", "failed_at": created}
                batch["errors"] = {"object": "list", "data": problems}
            self._batches[batch["id"]] = batch
            self._batch_polls[batch["id"]] = 0
            return 200, _DUMPS(batch).encode()

    async def _retrieve_batch(self, batch_id: str) -> tuple[int, bytes]:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _no_such("Batch", batch_id)
            now = int(time.time())
            finish = False
            if batch["status"] == "cancelling":
                batch |= {"status": "cancelled", "cancelled_at": now}
            elif batch["status"] in ("validating", "in_progress"):
                self._batch_polls[batch_id] += 1
                batch["in_progress_at"] = batch["in_progress_at"] or now
                if self._batch_polls[batch_id] <= self.batch_polls:
                    batch["status"] = "in_progress"
                else:  # a retrieve meanwhile finds it finalizing
                    batch |= {"status": "finalizing", "finalizing_at": now}
                    finish = True
        if finish:
            await self._finish_batch(batch)
        with self._lock:
            return 200, _DUMPS(batch).encode()

    async def _finish_batch(self, batch: dict[str, Any]) -> None:
        """Answer a batch's lines and write its output and error files."""
        with self._lock:
            lines, _ = _batch_lines(self._file_data[batch["input_file_id"]], batch["endpoint"])
            end = self.batch_end
            failing = set(self.batch_fail_lines)
            answered = len(lines) if end == "completed" else self.batch_expire_after
        now = int(time.time())
        if end == "failed":
            message = BATCH_TOKEN_LIMIT_MESSAGE.format(model=batch["model"])
            error = {
                "code": "token_limit_exceeded",
                "message": message,
                "param": None,
                "line": None,
            }
            with self._lock:
                batch |= {"status": "failed", "failed_at": now}
                batch["errors"] = {"object": "list", "data": [error]}
            return
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for number, line in enumerate(lines, start=1):
            if number > answered:
                error = {"code": "batch_expired", "message": BATCH_EXPIRED_MESSAGE}
                errors.append(self._batch_line(line["custom_id"], None, error))
            elif number in failing:
                error = {"code": "server_error", "message": BATCH_LINE_FAILED_MESSAGE}
                errors.append(self._batch_line(line["custom_id"], None, error))
            else:
                response = await self._batch_answer(batch["endpoint"], line["body"])
                if response is None:
                    error = {"code": "server_error", "message": BATCH_LINE_FAILED_MESSAGE}
                    errors.append(self._batch_line(line["custom_id"], None, error))
                else:
                    kept = outputs if response["status_code"] < 400 else errors
                    kept.append(self._batch_line(line["custom_id"], response, None))
        with self._lock:
            for kind, kept in (("output", outputs[::-1]), ("error", errors)):
                if kept:
                    data = "".join(_DUMPS(item) + "\n" for item in kept).encode()
                    file = self._store_file(f"{batch['id']}_{kind}.jsonl", "batch_output", data)
                    batch[f"{kind}_file_id"] = file["id"]
            batch["request_counts"] |= {"completed": len(outputs), "failed": len(errors)}
            if end == "expired":
                batch |= {"status": "expired", "expired_at": now}
            else:
                batch |= {"status": "completed", "completed_at": now}

    def _batch_line(
        self, custom_id: str, response: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> dict[str, Any]:
        with self._lock:
            self._batch_lines += 1
            number = self._batch_lines
        return {
            "id": f"batch_req_fake{number}",
            "custom_id": custom_id,
            "response": response,
            "error": error,
        }

    async def _batch_answer(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A line's answer, as the request sent without streaming gets it: ``{status_code,
        request_id, body}``, or None when the connection would have been dropped."""
        with self._lock:
            self.request_count += 1
            n = self.request_count
            if self.record_requests:
                self.requests.append(body)
                self.arrivals.append(time.time())
        started: list[int] = []
        pieces: list[bytes] = []

        async def receive() -> Message:
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(int(message["status"]))
            else:
                pieces.append(message.get("body", b""))

        try:
            if endpoint == "/v1/responses":
                await self._answer_response(receive, send, body, n)
            else:
                await self._answer(receive, send, body, n)
        except _Abort:
            return None
        if not started:
            return None
        text = b"".join(pieces).decode()
        try:
            answer: Any = json.loads(text)
        except ValueError:
            answer = text
        return {"status_code": started[0], "request_id": f"req_fake{n}", "body": answer}

    def _cancel_batch(self, batch_id: str) -> tuple[int, bytes]:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return _no_such("Batch", batch_id)
            if batch["status"] not in ("validating", "in_progress"):
                msg = f"Cannot cancel a batch with status '{batch['status']}'."
                return 400, _error_body(msg, "invalid_request_error", None)
            batch |= {"status": "cancelling", "cancelling_at": int(time.time())}
            return 200, _DUMPS(batch).encode()


def _no_such(kind: str, ident: str) -> tuple[int, bytes]:
    msg = f"No such {kind}: '{ident}'."
    return 404, _error_body(msg, "invalid_request_error", None)


def _batch_lines(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A batch input file's lines, and what is wrong with them (OpenAI's validation errors)."""
    lines: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()

    def problem(code: str, number: int | None, message: str) -> None:
        problems.append({"code": code, "line": number, "message": message, "param": None})

    for number, raw in enumerate(data.decode().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            problem("invalid_json_line", number, "This line is not parseable as valid JSON.")
            continue
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            problem("invalid_request", number, "Each line must be an object with a body object.")
            continue
        custom_id = line.get("custom_id")
        body = line["body"]
        if not isinstance(custom_id, str) or custom_id in seen:
            problem("duplicate_custom_id", number, "The custom_id for this request is a duplicate.")
        elif line.get("method") != "POST":
            problem("invalid_method", number, "The method must be POST.")
        elif line.get("url") != endpoint:
            problem("mismatched_endpoint", number, f"The url must be the batch's {endpoint}.")
        elif "stream" in body or "stream_options" in body:
            problem("invalid_request", number, "Streaming is not supported in a batch.")
        seen.add(str(custom_id))
        models.add(str(body.get("model")))
        lines.append(line)
    if len(models) > 1:
        problem("mismatched_model", None, "All requests of a batch must use the same model.")
    return lines, problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI Chat Completions server.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free)")
    parser.add_argument("--latency-s", type=float, default=0.0, help="delay before first byte")
    parser.add_argument("--rate-limit-per-s", type=float, default=None, help="429 above this")
    parser.add_argument("--no-usage", action="store_true", help="never send usage")
    args = parser.parse_args(argv)

    server = FakeOpenAIServer(
        args.port,
        latency_s=args.latency_s,
        send_usage=not args.no_usage,
        rate_limit_per_s=args.rate_limit_per_s,
        record_requests=False,
    )

    def ready() -> None:
        print(f"READY {server.base_url}", flush=True)

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal with the
    # previous handler: make that a clean exit (status 0) rather than death by signal.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_foreground(on_ready=ready)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main()
