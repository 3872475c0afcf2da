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
streamed in about three content chunks.

Scripted behaviours (``server.enqueue(...)``; each request pops the next one, "ok" when empty):

``ok``           normal answer (streaming or not, as requested).
``no_usage``     normal answer without any usage information.
``429``          rate-limit error; options ``retry_after`` (seconds, ``retry-after`` header) or
                 ``retry_after_ms`` (``retry-after-ms`` header).
``500``/``503``  server errors with an OpenAI-style error body.
``401``          authentication error (code ``invalid_api_key``).
``400_context``  400 with code ``context_length_exceeded``.
``hang``         read the request and send nothing for ``hang_s`` seconds (default 30, capped at
                 600; ends early when the client disconnects or the server stops), then close
                 the connection without any response.
``cut``          send the headers and ``after_chunks`` (default 1) content chunks, then abort the
                 connection without ``[DONE]`` and without ending the chunked body.
``malformed``    send one content chunk, then a ``data: {not json`` line, then the rest of the
                 stream. Non-streaming: a 200 whose body is not JSON.
``bad_shape``    streaming only: send one content chunk, then a chunk that is JSON but not a
                 chat completion chunk (``choices`` is a string), then the rest of the stream.
``slow_stream``  chunks spaced by ``gap_s`` seconds (default 0.2).

A request refused by ``rate_limit_per_s`` does not consume a scripted behaviour.
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

__all__ = ["KINDS", "Behaviour", "FakeOpenAIServer", "free_port", "main"]

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
    }
)

ANSWER_PREFIX = "fake answer to: "
SYSTEM_FINGERPRINT = "fp_fake"
MAX_HANG_S = 600.0
N_PIECES = 3

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


class _Answer:
    __slots__ = ("finish_reason", "pieces", "prompt_tokens", "text", "words")

    def __init__(self, body: dict[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list):
            messages = []
        text = ANSWER_PREFIX + _last_user_text(messages)
        words = _WORD_RE.findall(text)
        limit = body.get("max_completion_tokens")
        if limit is None:
            limit = body.get("max_tokens")
        self.finish_reason = "stop"
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(words):
            text = "".join(words[:limit]).rstrip()
            words = words[:limit]
            self.finish_reason = "length"
        self.text = text
        self.words = len(words)
        self.pieces = _split_pieces(text)
        self.prompt_tokens = _prompt_tokens(messages)

    def usage(self, completion_tokens: int | None = None) -> dict[str, Any]:
        completion = self.words if completion_tokens is None else completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
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
        )

    def start(self) -> FakeOpenAIServer:
        """Start serving in a daemon thread; return once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._stopping = False
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

        if kind in ("ok", "no_usage", "cut", "malformed", "bad_shape", "slow_stream"):
            if request.get("stream"):
                await self._stream(send, request, behaviour, n)
            else:
                await self._complete(send, request, behaviour, n)
            return
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
        answer = _Answer(request)
        if behaviour.kind == "slow_stream":
            gap = float(behaviour.opts.get("gap_s", 0.2))
            await self._sleep(gap * len(answer.pieces))
        payload: dict[str, Any] = {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "fake-model"),
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": answer.text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": answer.finish_reason,
                }
            ],
        }
        if self._wants_usage(behaviour):
            payload["usage"] = answer.usage()
        body = _DUMPS(payload).encode()
        if behaviour.kind == "malformed":
            await self._respond(send, 200, b"{not json")
        elif behaviour.kind == "cut":
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
        answer = _Answer(request)
        kind = behaviour.kind
        wants_usage = self._wants_usage(behaviour)
        on_chunks = wants_usage and self.usage_on_content_chunks
        opts = request.get("stream_options")
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        final_usage = wants_usage and include_usage and not on_chunks
        gap = float(behaviour.opts.get("gap_s", 0.2)) if kind == "slow_stream" else 0.0
        cut_after = int(behaviour.opts.get("after_chunks", 1)) if kind == "cut" else -1

        base = (
            f'{{"id":"chatcmpl-fake-{n}","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{_DUMPS(request.get("model", "fake-model"))},'
            f'"system_fingerprint":"{SYSTEM_FINGERPRINT}",'
        )
        null_usage = ',"usage":null' if final_usage else ""

        def chunk(delta: dict[str, Any], finish: str | None, usage: Any = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            tail = f',"usage":{_DUMPS(usage)}' if usage is not None else null_usage
            return f'data: {base}"choices":[{_DUMPS(choice)}]{tail}}}\n\n'.encode()

        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

        async def emit(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await emit(chunk({"role": "assistant", "content": "", "refusal": None}, None))
        pieces = answer.pieces or [""]
        words_so_far = 0
        for i, piece in enumerate(pieces):
            if i == cut_after:
                raise _Abort("cut")
            if gap:
                await self._sleep(gap)
            last = i == len(pieces) - 1
            words_so_far += len(piece.split())
            usage = answer.usage(words_so_far) if on_chunks else None
            await emit(chunk({"content": piece}, answer.finish_reason if last else None, usage))
            if kind == "malformed" and i == 0:
                await emit(b"data: {not json\n\n")
            if kind == "bad_shape" and i == 0:
                await emit(f'data: {base}"choices":"not a list"}}\n\n'.encode())
        if cut_after >= 0:
            raise _Abort("cut")
        tail = b""
        if final_usage:
            tail = f'data: {base}"choices":[],"usage":{_DUMPS(answer.usage())}}}\n\n'.encode()
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
