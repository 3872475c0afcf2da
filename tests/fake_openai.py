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

The protocol (reading requests, the model's answers and decisions, completions, Responses and
their events, stored responses and conversations, validation errors) is
:mod:`runner.wire.simulator`'s, answering with this server's persona; this module adds the
scripted faults, the rate limiter, request recording and the Batch API.

The answer is deterministic: ``"fake answer to: " + <content of the last user message>``,
streamed in about three content chunks. ``stop`` sequences end it at the first one it holds;
``max_tokens`` / ``max_completion_tokens`` cut it to that many words, with finish_reason
``length``. Ids are numbered by arrival (``chatcmpl-fake-<n>``, ``resp_fake_<n>``, ...).

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
call, calls left unanswered, and a request without ``messages`` are 400s as OpenAI sends them.

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
``include=["code_interpreter_call.outputs"]``). Usage: ``input_tokens`` is 7 per message,
function call and call output the model saw (instructions included) plus the words of its text;
``output_tokens`` the words of the answer (and of a call's arguments).

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
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from runner.wire.simulator import (
    DONE,
    ChatAnswer,
    ChatChoice,
    Exchange,
    Ids,
    Persona,
    Simulator,
    Step,
    dumps,
    error_body,
    include_usage,
    sse_event,
)
from runner.wire.simulator.dialogue import as_messages, content_text, input_items
from runner.wire.simulator.errors import UNPARSEABLE, chat_problem, json_object

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
# Kinds whose answer is text whatever tools are offered.
_NO_CALL = frozenset({"no_tool", "refusal", "content_filter", "incomplete", "failed"})

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
FAILED_MESSAGE = "The model failed to generate a response."
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
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


# ---------------------------------------------------------------------- the fake's persona


def _split_pieces(text: str, n: int = N_PIECES) -> list[str]:
    """Split ``text`` at word boundaries into at most ``n`` pieces that concatenate to it."""
    words = _WORD_RE.findall(text)
    if not words:
        return [text] if text else []
    k = min(n, len(words))
    size = math.ceil(len(words) / k)
    # _WORD_RE only drops leading whitespace, and the answer always starts with a word.
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _cut_words(text: str, limit: int) -> str | None:
    """``text``'s first ``limit`` words, or None when it has no more than that."""
    words = _WORD_RE.findall(text)
    if 0 <= limit < len(words):
        return "".join(words[:limit]).rstrip()
    return None


def _count_words(text: str) -> int:
    return len(text.split())


def _prompt_tokens(messages: list[Any]) -> int:
    """7 per message plus the words of its text."""
    total = 0
    for msg in messages:
        total += 7
        if isinstance(msg, dict):
            total += len(content_text(msg.get("content")).split())
    return total


def _arrival(raw: bytes, context: list[dict[str, Any]] | None, arrival: int) -> str:
    return str(arrival)


FAKE = Persona(
    name="fake",
    model="fake-model",
    fingerprint=SYSTEM_FINGERPRINT,
    lead=ANSWER_PREFIX,
    choice_note=" (choice {i})",
    finish_apart=False,
    file_id="file-fake0001",
    file_score=0.9,
    ids=Ids(
        completion="chatcmpl-fake-{key}",
        chat_call="call_fake_{key}_{i}",
        response="resp_fake_{key}",
        function_call="fc_fake_{key}_{i}",
        call="call_fake_{key}_{i}",
        message="msg_fake_{key}_{i}",
        web_search_call="ws_fake_{key}_{i}",
        file_search_call="fs_fake_{key}_{i}",
        code_interpreter_call="ci_fake_{key}_{i}",
        container="cntr_fake_{key}",
        conversation="conv_fake_{i}",
        item="{prefix}_fake_in{i}",
    ),
    key=_arrival,
    count_text=_count_words,
    count_messages=_prompt_tokens,
    cut=_cut_words,
    pieces=_split_pieces,
)


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


# ---------------------------------------------------------------------- scripted faults


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


def _plan(
    answer: ChatAnswer, choice: ChatChoice, behaviour: Behaviour, after: int | None
) -> tuple[list[Step], int]:
    """The chunks a choice streams after its role chunk under a behaviour, and how many of its
    pieces they carry."""
    kind = behaviour.kind
    pieces = choice.pieces or [""]
    sent = pieces if after is None else pieces[:after]
    steps: list[Step] = [(answer.delta(choice, piece), None) for piece in sent]
    if choice.call is not None:
        # As OpenAI streams a call: the role chunk names it, the arguments follow, and an
        # empty delta carries the finish_reason.
        if kind == "no_done":
            finished = bool(behaviour.opts.get("finish"))
        else:
            finished = kind != "stream_error" and len(sent) == len(pieces)
        if finished:
            steps.append(({}, choice.finish_reason))
        return steps, len(sent)
    if kind == "no_done":
        finish_at = len(sent) - 1 if behaviour.opts.get("finish") else -1
    elif kind in ("refusal", "content_filter", "incomplete", "stream_error"):
        finish_at = -1
    else:  # a cut stream ends with the answer's last piece, if it gets that far
        finish_at = len(pieces) - 1
    if 0 <= finish_at < len(steps):
        steps[finish_at] = (steps[finish_at][0], choice.finish_reason)
    if kind == "refusal":
        steps.append(({}, choice.finish_reason))
    elif kind in ("content_filter", "incomplete"):
        steps.append(({}, _cut_finish(behaviour)))
    return steps, len(sent)


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
        # The model, with its stored responses and conversations; and the calls it made under
        # "tool_twice".
        self._simulator = Simulator(FAKE)
        self._planned: set[str] = set()
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
        self._simulator.store.reset()
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.arrivals.clear()
            self.request_count = 0
            self.rate_limited_count = 0
            self.max_in_flight = 0
            self.path_counts.clear()
            self._bucket_rate = None
            self._planned.clear()
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
        return self._simulator.store.context_of(response_id)

    def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's items, oldest first."""
        return self._simulator.store.conversation_items(conversation_id)

    def batches_made(self) -> list[dict[str, Any]]:
        """Every batch created, oldest first, as a retrieve would give it now."""
        with self._lock:
            return json.loads(dumps(list(self._batches.values())))

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
            await self._respond(send, 200, self._simulator.models())
            return
        if path.startswith(("/v1/files", "/v1/batches")):
            await self._batch_route(send, method, path, scope, b"".join(chunks))
            return
        if path.startswith("/v1/conversations") or (
            path.startswith("/v1/responses/") and method == "GET"
        ):
            query = scope.get("query_string", b"")
            reply = self._simulator.store.route(
                method, path.split("/")[2:], query, b"".join(chunks)
            )
            await self._respond(send, reply.status, reply.body)
            return
        if path not in ("/v1/chat/completions", "/v1/responses"):
            msg = f"Invalid URL ({method} {scope['path']})"
            await self._respond(send, 404, error_body(msg, "invalid_request_error", None))
            return
        if method != "POST":
            msg = f"Method {method} not allowed"
            await self._respond(send, 405, error_body(msg, "invalid_request_error", None))
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
            await self._respond(send, 400, UNPARSEABLE.body)
            return

        wait = self._take_token()
        if wait is not None:
            with self._lock:
                self.rate_limited_count += 1
            msg = f"Rate limit reached: limit {self.rate_limit_per_s} requests per second."
            headers = [(b"retry-after-ms", str(max(1, math.ceil(wait * 1000))).encode())]
            body = error_body(msg, "requests", "rate_limit_exceeded")
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
        problem = chat_problem(request)
        if problem is not None:
            await self._respond(send, problem.status, problem.body)
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
            body = error_body(
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
            body = error_body(QUOTA_MESSAGE, "insufficient_quota", "insufficient_quota")
        elif kind == "stream_error":  # asked for without streaming
            status = 500
            body = error_body(STREAM_ERROR_MESSAGE, "server_error", None)
        elif kind == "500":
            status = 500
            body = error_body(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            )
        elif kind == "503":
            status = 503
            body = error_body(
                "The engine is currently overloaded, please try again later.",
                "server_error",
                "service_unavailable",
            )
        elif kind == "401":
            status = 401
            body = error_body(
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
                used = _prompt_tokens(as_messages(input_items(request.get("input"))))
                param = "input"
            body = error_body(
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

    def _again(self, kind: str) -> Callable[[set[str]], bool] | None:
        """Whether the model calls its function again on the results of the given calls: under
        ``tool_twice``, or on the results of calls it made under it."""
        if kind == "tool_twice":
            return lambda latest: True
        if not self._planned:
            return None

        def again(latest: set[str]) -> bool:
            with self._lock:
                return bool(latest & self._planned)

        return again

    def _chat_answer(self, request: dict[str, Any], behaviour: Behaviour, n: int) -> ChatAnswer:
        """The model's answer to a chat request under a behaviour; the calls it makes under
        ``tool_twice`` are noted, so that their results are called on once more."""
        kind = behaviour.kind
        answer = self._simulator.chat_answer(
            request,
            b"",
            n,
            refusal=_refusal_text(behaviour),
            n=1 if self.ignore_n else None,
            calls=kind not in _NO_CALL,
            again=self._again(kind),
        )
        if answer.again:
            calls = {choice.call[0] for choice in answer.choices if choice.call is not None}
            with self._lock:
                self._planned.update(calls)
        return answer

    async def _complete(
        self, send: Send, request: dict[str, Any], behaviour: Behaviour, n: int
    ) -> None:
        answer = self._chat_answer(request, behaviour, n)
        kind = behaviour.kind
        if kind == "slow_stream":
            gap = float(behaviour.opts.get("gap_s", 0.2))
            await self._sleep(gap * max(len(choice.pieces) for choice in answer.choices))
        cuts = ("no_done", "content_filter", "incomplete")
        after = _after_chunks(behaviour) if kind in cuts else None
        choices = []
        completion_tokens = 0
        for choice in answer.choices:
            text, tokens = choice.text, choice.tokens
            finish: str | None = choice.finish_reason
            if after is not None:
                text = "".join((choice.pieces or [""])[:after])
                tokens = answer.tokens_of(choice, after)
            if kind in ("content_filter", "incomplete"):
                finish = _cut_finish(behaviour)
            elif kind == "no_done" and not behaviour.opts.get("finish"):
                finish = None
            choices.append(answer.choice(choice, text, finish))
            completion_tokens += tokens
        usage = answer.usage(completion_tokens) if self._wants_usage(behaviour) else None
        body = dumps(answer.completion(choices, usage)).encode()
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
        answer = self._chat_answer(request, behaviour, n)
        kind = behaviour.kind
        wants_usage = self._wants_usage(behaviour)
        on_chunks = wants_usage and self.usage_on_content_chunks
        final_usage = wants_usage and include_usage(request) and not on_chunks
        gap = float(behaviour.opts.get("gap_s", 0.2)) if kind == "slow_stream" else 0.0
        after = _after_chunks(behaviour)
        plans = [_plan(answer, choice, behaviour, after) for choice in answer.choices]
        steps = [plan for plan, _ in plans]
        sent = [0] * len(plans)  # pieces of each choice sent so far (for running usage)

        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

        async def emit(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        round_ = -1
        for r, choice, step in answer.schedule(steps):
            if r != round_:
                round_ = r
                if gap and r >= 0:
                    await self._sleep(gap)
            if step is None:
                role = answer.role(choice)
                await emit(answer.chunk(choice.index, role, None, usage_null=final_usage))
                continue
            usage = None
            if on_chunks:
                sent[choice.index] = min(r + 1, plans[choice.index][1])
                words = sum(
                    answer.tokens_of(c, k) for c, k in zip(answer.choices, sent, strict=True)
                )
                usage = answer.usage(words)
            delta, finish = step
            await emit(answer.chunk(choice.index, delta, finish, usage, usage_null=final_usage))
            if r == 0 and choice.index == 0 and kind == "malformed":
                await emit(b"data: {not json\n\n")
            if r == 0 and choice.index == 0 and kind == "bad_shape":
                await emit(answer.frame('"choices":"not a list"'))
        if kind == "cut":
            raise _Abort("cut")
        words = sum(answer.tokens_of(c, k) for c, (_, k) in zip(answer.choices, plans, strict=True))
        usage_chunk = answer.usage_chunk(answer.usage(words))
        if kind == "stream_error":
            event = b"data: " + error_body(STREAM_ERROR_MESSAGE, "server_error", None) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": False})
        elif kind == "no_done":
            if final_usage and behaviour.opts.get("finish"):
                await emit(usage_chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            tail = usage_chunk if final_usage else b""
            await send({"type": "http.response.body", "body": tail + DONE, "more_body": False})

    # ------------------------------------------------------------------ Responses API

    async def _answer_response(
        self, receive: Receive, send: Send, request: dict[str, Any], n: int
    ) -> None:
        problem = self._simulator.response_problem(request)
        if problem is not None:
            await self._respond(send, problem.status, problem.body)
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

        truncate = None
        if kind in ("incomplete", "content_filter"):
            after = int(behaviour.opts.get("after_chunks", 1))
            truncate = (after, _incomplete_reason(behaviour))
        exchange = self._simulator.exchange(
            request,
            b"",
            n,
            refusal=_refusal_text(behaviour),
            calls=kind not in _NO_CALL,
            again=self._again(kind),
            truncate=truncate,
        )
        call = exchange.call
        if call is not None and exchange.again:
            with self._lock:
                self._planned.add(call["call_id"])
        if stream:
            await self._stream_response(send, exchange, behaviour)
        else:
            await self._complete_response(send, exchange, behaviour)

    def _commit(self, exchange: Exchange, response: dict[str, Any]) -> None:
        """Keep a finished response: for GET, and (completed or incomplete) to be continued
        from and in its conversation."""
        self._simulator.store.commit(exchange, response)

    def _usage_for(self, exchange: Exchange, behaviour: Behaviour, words: int) -> Any:
        return exchange.usage(words) if self._wants_usage(behaviour) else None

    async def _complete_response(
        self, send: Send, exchange: Exchange, behaviour: Behaviour
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
        body = dumps(response).encode()
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

    async def _stream_response(self, send: Send, exchange: Exchange, behaviour: Behaviour) -> None:
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

        sent = "".join(e["delta"] for e in head if e["type"].endswith(".delta"))
        words = FAKE.count_text(sent)
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
            sequence += 1
            return sse_event(event, sequence - 1)

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
            status, payload = (200, dumps(found).encode()) if found else _no_such("File", parts[1])
        elif parts == ["batches"] and method == "POST":
            status, payload = self._create_batch(raw)
        elif parts[0] == "batches" and len(parts) == 2 and method == "GET":
            status, payload = await self._retrieve_batch(parts[1])
        elif parts[0] == "batches" and parts[2:] == ["cancel"] and method == "POST":
            status, payload = self._cancel_batch(parts[1])
        else:
            msg = f"Invalid URL ({method} {path})"
            status, payload = 404, error_body(msg, "invalid_request_error", None)
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
                return 400, error_body(msg, "invalid_request_error", code, name)
        purpose = fields["purpose"][1].decode()
        if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data"):
            msg = f"'{purpose}' is not one of the supported purposes."
            return 400, error_body(msg, "invalid_request_error", None, "purpose")
        filename, data = fields["file"]
        with self._lock:
            file = self._store_file(filename or "upload", purpose, data)
        return 200, dumps(file).encode()

    def _create_batch(self, raw: bytes) -> tuple[int, bytes]:
        body = json_object(raw)
        if body is None:
            return 400, UNPARSEABLE.body
        known = ("input_file_id", "endpoint", "completion_window", "metadata")
        for key in body:
            if key not in (*known, "output_expires_after"):
                msg = f"Unsupported parameter: '{key}'."
                return 400, error_body(msg, "invalid_request_error", "unsupported_parameter", key)
        for key in known[:3]:
            if not isinstance(body.get(key), str):
                msg = f"Missing required parameter: '{key}'."
                code = "missing_required_parameter"
                return 400, error_body(msg, "invalid_request_error", code, key)
        endpoint = body["endpoint"]
        if endpoint not in BATCH_ENDPOINTS:
            msg = (
                f"Invalid value: '{endpoint}'. Supported values are: {', '.join(BATCH_ENDPOINTS)}."
            )
            return 400, error_body(msg, "invalid_request_error", "invalid_value", "endpoint")
        if body["completion_window"] != "24h":
            msg = f"Invalid value: '{body['completion_window']}'. Supported values are: '24h'."
            code = "invalid_value"
            return 400, error_body(msg, "invalid_request_error", code, "completion_window")
        with self._lock:
            file = self._files.get(body["input_file_id"])
            if file is None:
                return _no_such("File", body["input_file_id"])
            if file["purpose"] != "batch":
                msg = f"File {file['id']} has purpose '{file['purpose']}', not 'batch'."
                return 400, error_body(msg, "invalid_request_error", None, "input_file_id")
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
            return 200, dumps(batch).encode()

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
            return 200, dumps(batch).encode()

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
                    data = "".join(dumps(item) + "\n" for item in kept).encode()
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
                return 400, error_body(msg, "invalid_request_error", None)
            batch |= {"status": "cancelling", "cancelling_at": int(time.time())}
            return 200, dumps(batch).encode()


def _no_such(kind: str, ident: str) -> tuple[int, bytes]:
    msg = f"No such {kind}: '{ident}'."
    return 404, error_body(msg, "invalid_request_error", None)


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
