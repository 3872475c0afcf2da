"""A fake OpenAI-compatible Chat Completions server for tests and benchmarks.

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

A request refused by ``rate_limit_per_s`` does not consume a scripted behaviour. The listening
socket takes a backlog of :data:`BACKLOG` connections, so a burst of a thousand connects is
accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
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
    """One choice of an answer: its text, the pieces it streams in, and why it ended."""

    __slots__ = ("finish_reason", "index", "pieces", "text", "words")

    def __init__(self, index: int, text: str, limit: Any) -> None:
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
    """The answer to one request: ``n`` choices (or refusals) and the prompt's token count."""

    __slots__ = ("choices", "prompt_tokens", "refusal")

    def __init__(
        self, body: dict[str, Any], refusal: str | None = None, ignore_n: bool = False
    ) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list):
            messages = []
        text = ANSWER_PREFIX + _last_user_text(messages) if refusal is None else refusal
        limit = body.get("max_completion_tokens")
        if limit is None:
            limit = body.get("max_tokens")
        self.refusal = refusal is not None
        self.choices = [
            _Choice(i, text if i == 0 else f"{text} (choice {i})", limit)
            for i in range(1 if ignore_n else _choice_count(body))
        ]
        self.prompt_tokens = _prompt_tokens(messages)

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
    if kind in ("cut", "content_filter"):
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

        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # time.time() as each request's body was read
        self.request_count = 0
        self.rate_limited_count = 0
        self.in_flight = 0  # requests being answered right now
        self.max_in_flight = 0  # the most answered at once since the last reset

        self._lock = threading.Lock()
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
        """Forget requests and scripted behaviours; restore default settings."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.arrivals.clear()
            self.request_count = 0
            self.rate_limited_count = 0
            self.max_in_flight = 0
            self._bucket_rate = None
        self.latency_s = 0.0
        self.send_usage = True
        self.usage_on_content_chunks = False
        self.ignore_n = False
        self.rate_limit_per_s = None

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
        if path == "/v1/models" and method == "GET":
            body = {
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}],
            }
            await self._respond(send, 200, _DUMPS(body).encode())
            return
        if path != "/v1/chat/completions":
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
            msg = "We could not parse the JSON body of your request."
            await self._respond(send, 400, _error_body(msg, "invalid_request_error", None))
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
            await self._answer(receive, send, request, n)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, receive: Any, send: Any, request: dict[str, Any], n: int) -> None:
        behaviour = self._next_behaviour()
        kind = behaviour.kind
        if kind == "hang":
            await self._hang(receive, float(behaviour.opts.get("hang_s", 30.0)))
            return

        if self.latency_s:
            await self._sleep(self.latency_s)

        if kind in ANSWERING and request.get("stream"):
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
            used = _prompt_tokens(messages if isinstance(messages, list) else [])
            body = _error_body(
                "This model's maximum context length is 128000 tokens. However, your messages "
                f"resulted in {128000 + used} tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                "context_length_exceeded",
                param="messages",
            )
        else:  # pragma: no cover - KINDS and the dispatch in app() are kept in step
            raise AssertionError(kind)
        await self._respond(send, status, body, headers)

    def _wants_usage(self, behaviour: Behaviour) -> bool:
        return self.send_usage and behaviour.kind != "no_usage"

    async def _complete(
        self, send: Send, request: dict[str, Any], behaviour: Behaviour, n: int
    ) -> None:
        answer = _Answer(request, _refusal_text(behaviour), self.ignore_n)
        kind = behaviour.kind
        if kind == "slow_stream":
            gap = float(behaviour.opts.get("gap_s", 0.2))
            await self._sleep(gap * max(len(choice.pieces) for choice in answer.choices))
        after = _after_chunks(behaviour) if kind in ("no_done", "content_filter") else None
        choices = []
        completion_tokens = 0
        for choice in answer.choices:
            text, words = choice.text, choice.words
            finish: str | None = choice.finish_reason
            if after is not None:
                sent = (choice.pieces or [""])[:after]
                text, words = "".join(sent), _word_count(sent)
            if kind == "content_filter":
                finish = "content_filter"
            elif kind == "no_done" and not behaviour.opts.get("finish"):
                finish = None
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if answer.refusal else text,
                "refusal": text if answer.refusal else None,
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
        answer = _Answer(request, _refusal_text(behaviour), self.ignore_n)
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

        # What follows each choice's role chunk: (delta, finish_reason, words) per chunk.
        key = "refusal" if answer.refusal else "content"
        plans: list[list[tuple[dict[str, Any], str | None, int]]] = []
        for choice in answer.choices:
            pieces = choice.pieces or [""]
            sent = pieces if after is None else pieces[:after]
            if kind == "no_done":
                finish_at = len(sent) - 1 if behaviour.opts.get("finish") else -1
            elif kind in ("refusal", "content_filter", "stream_error"):
                finish_at = -1
            else:  # a cut stream ends with the answer's last piece, if it gets that far
                finish_at = len(pieces) - 1
            plan = [
                ({key: piece}, choice.finish_reason if j == finish_at else None, len(piece.split()))
                for j, piece in enumerate(sent)
            ]
            if kind == "refusal":
                plan.append(({}, choice.finish_reason, 0))
            elif kind == "content_filter":
                plan.append(({}, "content_filter", 0))
            plans.append(plan)
        if answer.refusal:
            role: dict[str, Any] = {"role": "assistant", "content": None, "refusal": ""}
        else:
            role = {"role": "assistant", "content": "", "refusal": None}

        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

        async def emit(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await emit(chunk(0, role, None))
        words_sent = 0
        for r in range(max(len(plan) for plan in plans)):
            if gap:
                await self._sleep(gap)
            for choice, plan in zip(answer.choices, plans, strict=True):
                if r == 0 and choice.index > 0:
                    await emit(chunk(choice.index, role, None))
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
