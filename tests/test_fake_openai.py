"""Tests for the fake OpenAI server used by the runner's tests and benchmarks."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from fake_openai import BACKLOG, REFUSAL_TEXT, Behaviour, FakeOpenAIServer, free_port
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import (
    ResponseCodeInterpreterToolCall,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFileSearchToolCall,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseFunctionWebSearch,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseRefusalDeltaEvent,
    ResponseRefusalDoneEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)

MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is the capital of France"},
]
ANSWER = "fake answer to: what is the capital of France"
PROMPT_TOKENS = 7 * 2 + 2 + 6
ANSWER_PIECES = ["fake answer to: ", "what is the ", "capital of France"]
STREAM_ERROR = {
    "message": "The server had an error while processing your request.",
    "type": "server_error",
    "param": None,
    "code": None,
}


@pytest.fixture
def server(fake_server: FakeOpenAIServer) -> FakeOpenAIServer:
    return fake_server  # conftest's session server, reset for each test


@pytest.fixture
def client(server: FakeOpenAIServer) -> Iterator[OpenAI]:
    with OpenAI(api_key="test", base_url=server.base_url, max_retries=0) as c:
        yield c


def _stream(client: OpenAI, **kwargs: object) -> list[ChatCompletionChunk]:
    stream = client.chat.completions.create(
        model="fake-model", messages=MESSAGES, stream=True, **kwargs
    )
    with stream:
        return list(stream)


def _raw_body(server: FakeOpenAIServer, **body: object) -> str:
    """POST a chat completion with httpx2 and return the whole (cleanly ended) body."""
    with httpx2.Client() as raw:
        resp = raw.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": MESSAGES, **body},
        )
    assert resp.status_code == 200
    return resp.text


def _texts(chunks: list[ChatCompletionChunk]) -> dict[int, str]:
    """Content and refusal text of each choice, by index."""
    texts: dict[int, str] = {}
    for c in chunks:
        for choice in c.choices:
            part = (choice.delta.content or "") + (choice.delta.refusal or "")
            texts[choice.index] = texts.get(choice.index, "") + part
    return texts


def _finishes(chunks: list[ChatCompletionChunk]) -> list[tuple[int, str | None]]:
    return [(ch.index, ch.finish_reason) for c in chunks for ch in c.choices]


def test_stream_with_usage_chunk(server: FakeOpenAIServer, client: OpenAI) -> None:
    chunks = _stream(client, stream_options={"include_usage": True})

    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 3
    assert "".join(c.choices[0].delta.content for c in content_chunks) == ANSWER
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in content_chunks[:-1])

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == len(ANSWER.split())
    assert last.usage.prompt_tokens == 7 * 2 + 2 + 6
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert last.usage.prompt_tokens_details.cached_tokens == 0
    assert last.usage.completion_tokens_details.reasoning_tokens == 0
    assert all(c.usage is None for c in chunks[:-1])

    assert {c.id for c in chunks} == {"chatcmpl-fake-1"}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"fake-model"}
    assert {c.system_fingerprint for c in chunks} == {"fp_fake"}
    assert server.request_count == 1
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    assert server.requests[0]["messages"] == MESSAGES


def test_stream_without_usage(server: FakeOpenAIServer, client: OpenAI) -> None:
    # Not asked for.
    chunks = _stream(client)
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)

    # Asked for, but the scripted behaviour drops it.
    server.enqueue("no_usage")
    chunks = _stream(client, stream_options={"include_usage": True})
    assert all(c.usage is None and c.choices for c in chunks)

    # Asked for, but the server is set never to send it.
    server.send_usage = False
    chunks = _stream(client, stream_options={"include_usage": True})
    assert all(c.usage is None and c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER
    assert [c.id for c in chunks][-1] == "chatcmpl-fake-3"


def test_usage_on_content_chunks(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.usage_on_content_chunks = True
    chunks = _stream(client, stream_options={"include_usage": True})
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert all(c.choices for c in chunks)  # no usage-only chunk
    assert all(c.usage is not None for c in content_chunks)
    counts = [c.usage.completion_tokens for c in content_chunks]
    assert counts == sorted(counts)
    assert counts[-1] == len(ANSWER.split())


def test_non_streaming_and_max_tokens(server: FakeOpenAIServer, client: OpenAI) -> None:
    resp = client.chat.completions.create(model="m-1", messages=MESSAGES)
    assert resp.choices[0].message.content == ANSWER
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "m-1"
    assert resp.object == "chat.completion"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == len(ANSWER.split())

    resp = client.chat.completions.create(model="m-1", messages=MESSAGES, max_tokens=3)
    assert resp.choices[0].message.content == "fake answer to:"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 3

    chunks = _stream(client, max_completion_tokens=4)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "fake answer to: what"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_fifo_of_behaviours(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("500", Behaviour("ok"), "503")
    assert server.pending == 3
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert err.value.status_code == 500
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    with pytest.raises(openai.InternalServerError) as err:
        _stream(client)
    assert err.value.status_code == 503
    assert server.pending == 0
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    assert server.request_count == 4

    with pytest.raises(ValueError, match="unknown behaviour"):
        server.enqueue("teapot")


def test_scripted_429_headers(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Behaviour("429", retry_after=2), Behaviour("429", retry_after_ms=150))
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "2"
    assert err.value.code == "rate_limit_exceeded"

    with httpx2.Client() as raw:
        resp = raw.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": MESSAGES},
        )
    assert resp.status_code == 429
    assert resp.headers["retry-after-ms"] == "150"
    assert "retry-after" not in resp.headers
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"

    raw_ok = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw_ok.http_response.status_code == 200
    assert raw_ok.parse().choices[0].message.content == ANSWER


def test_error_statuses(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("500", "401", "400_context")
    with pytest.raises(openai.InternalServerError) as err500:
        _stream(client)
    assert err500.value.body["type"] == "server_error"
    with pytest.raises(openai.AuthenticationError) as err401:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert err401.value.code == "invalid_api_key"
    assert err401.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as err400:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert err400.value.code == "context_length_exceeded"


def test_cut_stream_raises_connection_error(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("cut")
    received: list[str] = []
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with stream, pytest.raises(openai.APIConnectionError) as err:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert type(err.value) is openai.APIConnectionError
    assert isinstance(err.value.__cause__, httpx2.RemoteProtocolError)
    assert "incomplete chunked read" in str(err.value.__cause__)
    assert "".join(received) == "fake answer to: "  # role chunk + one content chunk

    server.enqueue(Behaviour("cut", after_chunks=2))
    with pytest.raises(openai.APIConnectionError):
        _stream(client)

    server.enqueue("cut")  # non-streaming: half a body under a content-length
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=MESSAGES)

    # The server keeps working afterwards.
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices


def test_malformed_stream_raises_on_parse(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("malformed")
    received: list[str] = []
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with stream, pytest.raises(json.JSONDecodeError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "fake answer to: "

    server.enqueue("malformed")
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_hang(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("hang")
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.5).chat.completions.create(
            model="m", messages=MESSAGES, stream=True
        )
    assert 0.4 < time.monotonic() - start < 3

    # A short hang ends by closing the connection without any response.
    server.enqueue(Behaviour("hang", hang_s=0.2))
    with pytest.raises(openai.APIConnectionError) as err:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert type(err.value) is openai.APIConnectionError
    assert isinstance(err.value.__cause__, httpx2.RemoteProtocolError)


def test_slow_stream_and_latency(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(Behaviour("slow_stream", gap_s=0.1))
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with stream:
        arrivals = [time.monotonic() for c in stream if c.choices and c.choices[0].delta.content]
    assert len(arrivals) == 3
    assert arrivals[2] - arrivals[0] >= 0.15

    server.latency_s = 0.3
    start = time.monotonic()
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - start >= 0.28


def test_rate_limit(server: FakeOpenAIServer) -> None:
    server.rate_limit_per_s = 5
    statuses = []
    retry_after_ms = []
    with httpx2.Client() as raw:
        for _ in range(20):
            resp = raw.post(
                f"{server.base_url}/chat/completions",
                json={"model": "m", "messages": MESSAGES},
            )
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                retry_after_ms.append(int(resp.headers["retry-after-ms"]))
                assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    assert statuses.count(200) >= 5
    assert statuses.count(429) >= 5
    assert server.rate_limited_count == statuses.count(429)
    assert all(0 < ms <= 200 for ms in retry_after_ms)

    server.rate_limit_per_s = None
    with OpenAI(api_key="test", base_url=server.base_url, max_retries=0) as c:
        assert c.chat.completions.create(model="m", messages=MESSAGES).choices


def test_async_client_concurrent(server: FakeOpenAIServer) -> None:
    async def run() -> list[str]:
        async with AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=0) as c:

            async def one(i: int) -> str:
                stream = await c.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": f"question {i}"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                parts = []
                async with stream:
                    async for chunk in stream:
                        if chunk.choices:
                            parts.append(chunk.choices[0].delta.content or "")
                return "".join(parts)

            return await asyncio.gather(*(one(i) for i in range(20)))

    answers = asyncio.run(run())
    assert answers == [f"fake answer to: question {i}" for i in range(20)]
    assert server.request_count == 20


def test_other_routes(server: FakeOpenAIServer) -> None:
    with httpx2.Client() as raw:
        assert raw.get(f"{server.base_url}/models").json()["data"][0]["id"] == "fake-model"
        assert raw.get(f"{server.base_url}/nope").status_code == 404
        resp = raw.post(f"{server.base_url}/chat/completions", content=b"{oops")
        assert resp.status_code == 400
        assert resp.json()["error"]["type"] == "invalid_request_error"


def test_server_lifecycle() -> None:
    port = free_port()
    assert isinstance(port, int)
    server = FakeOpenAIServer(port)
    assert server.port == port
    assert server.base_url == f"http://127.0.0.1:{port}/v1"
    with server, httpx2.Client() as raw:
        assert raw.get(f"{server.base_url}/models").status_code == 200
    with pytest.raises(httpx2.ConnectError), httpx2.Client() as raw:
        raw.get(f"{server.base_url}/models")


def test_cli_subprocess() -> None:
    script = Path(__file__).with_name("fake_openai.py")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--no-usage"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"READY http://127.0.0.1:{port}/v1"
        with OpenAI(api_key="test", base_url=line.split()[1], max_retries=0) as c:
            chunks = _stream(c, stream_options={"include_usage": True})
        assert all(ch.usage is None for ch in chunks)
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == ANSWER
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_no_done_stream_ends_cleanly(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("no_done")
    chunks = _stream(client, stream_options={"include_usage": True})
    assert [c.choices[0].delta.content for c in chunks] == ["", *ANSWER_PIECES]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert _finishes(chunks) == [(0, None)] * 4
    assert all(c.usage is None for c in chunks)

    # On the wire: four whole events, no usage chunk, no [DONE], and a cleanly ended body
    # (httpx2 raises on a chunked body that is cut short, as for "cut").
    server.enqueue("no_done")
    body = _raw_body(server, stream=True, stream_options={"include_usage": True})
    assert body.count("data: ") == 4
    assert body.endswith('"finish_reason":null}],"usage":null}\n\n')
    assert "[DONE]" not in body
    assert '"choices":[]' not in body

    # finish=True: the last content chunk carries finish_reason and usage follows; no [DONE].
    server.enqueue(Behaviour("no_done", finish=True))
    chunks = _stream(client, stream_options={"include_usage": True})
    assert [c.choices[0].delta.content for c in chunks[:-1]] == ["", *ANSWER_PIECES]
    assert _finishes(chunks) == [(0, None), (0, None), (0, None), (0, "stop")]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 9
    server.enqueue(Behaviour("no_done", finish=True))
    body = _raw_body(server, stream=True, stream_options={"include_usage": True})
    assert body.count("data: ") == 5
    assert body.endswith('"rejected_prediction_tokens":0}}}\n\n')
    assert "[DONE]" not in body

    # after_chunks=K: only the first K content chunks.
    server.enqueue(Behaviour("no_done", after_chunks=1))
    chunks = _stream(client, stream_options={"include_usage": True})
    assert [c.choices[0].delta.content for c in chunks] == ["", "fake answer to: "]
    assert _finishes(chunks) == [(0, None), (0, None)]
    server.enqueue(Behaviour("no_done", after_chunks=2, finish=True))
    chunks = _stream(client, stream_options={"include_usage": True})
    assert [c.choices[0].delta.content for c in chunks[:-1]] == ["", *ANSWER_PIECES[:2]]
    assert _finishes(chunks) == [(0, None), (0, None), (0, "stop")]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6

    assert server.pending == 0
    assert _stream(client)[-1].choices[0].finish_reason == "stop"  # the next one is whole


def test_no_done_non_streaming(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue(
        "no_done", Behaviour("no_done", after_chunks=1), Behaviour("no_done", finish=True)
    )
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == ANSWER
    assert resp.choices[0].finish_reason is None
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 9

    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "fake answer to: "
    assert resp.choices[0].finish_reason is None
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 3

    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].finish_reason == "stop"

    server.enqueue("no_done")
    payload = json.loads(_raw_body(server))
    assert payload["choices"][0]["finish_reason"] is None
    assert "finish_reason" in payload["choices"][0]


def test_n_choices_stream_interleave(server: FakeOpenAIServer, client: OpenAI) -> None:
    chunks = _stream(client, n=3, stream_options={"include_usage": True})
    one = [
        (ch.index, ch.delta.role, ch.delta.content, ch.finish_reason)
        for c in chunks[:-1]
        for ch in c.choices
    ]
    assert one == [
        (0, "assistant", "", None),
        (0, None, "fake answer to: ", None),
        (1, "assistant", "", None),
        (1, None, "fake answer to: what ", None),
        (2, "assistant", "", None),
        (2, None, "fake answer to: what ", None),
        (0, None, "what is the ", None),
        (1, None, "is the capital of ", None),
        (2, None, "is the capital of ", None),
        (0, None, "capital of France", "stop"),
        (1, None, "France (choice 1)", "stop"),
        (2, None, "France (choice 2)", "stop"),
    ]
    assert all(len(c.choices) == 1 for c in chunks[:-1])
    assert _texts(chunks) == {0: ANSWER, 1: ANSWER + " (choice 1)", 2: ANSWER + " (choice 2)"}

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 9 + 11 + 11
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.total_tokens == PROMPT_TOKENS + 31
    assert {c.id for c in chunks} == {"chatcmpl-fake-1"}
    assert server.requests[0]["n"] == 3


def test_n_choices_non_streaming(server: FakeOpenAIServer, client: OpenAI) -> None:
    resp = client.chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert [c.message.content for c in resp.choices] == [ANSWER, ANSWER + " (choice 1)"]
    assert [c.finish_reason for c in resp.choices] == ["stop", "stop"]
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 9 + 11
    assert resp.usage.prompt_tokens == PROMPT_TOKENS

    # The token limit applies to each choice: choice 1 is cut, choice 0 fits.
    resp = client.chat.completions.create(model="m", messages=MESSAGES, n=2, max_tokens=10)
    assert [c.message.content for c in resp.choices] == [ANSWER, ANSWER + " (choice"]
    assert [c.finish_reason for c in resp.choices] == ["stop", "length"]
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 9 + 10

    # n=1 and no n answer alike.
    resp = client.chat.completions.create(model="m", messages=MESSAGES, n=1)
    assert [c.message.content for c in resp.choices] == [ANSWER]


def test_n_choices_usage_on_content_chunks(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.usage_on_content_chunks = True
    chunks = _stream(client, n=2, stream_options={"include_usage": True})
    assert all(len(c.choices) == 1 for c in chunks)  # no usage-only chunk
    running = [(c.choices[0].index, c.usage.completion_tokens if c.usage else None) for c in chunks]
    # role 0, piece 0 of choice 0 (3 words), role 1, then pieces alternate (choice 1: 4, 4, 3).
    assert running == [(0, None), (0, 3), (1, None), (1, 7), (0, 10), (1, 14), (0, 17), (1, 20)]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert _texts(chunks) == {0: ANSWER, 1: ANSWER + " (choice 1)"}


REFUSAL_1 = REFUSAL_TEXT + " (choice 1)"


@pytest.mark.parametrize(
    ("behaviour", "texts", "finish", "streamed_usage", "usage"),
    [
        ("ok", [ANSWER, ANSWER + " (choice 1)"], "stop", 20, 20),
        ("no_usage", [ANSWER, ANSWER + " (choice 1)"], "stop", None, None),
        (Behaviour("slow_stream", gap_s=0.01), [ANSWER, ANSWER + " (choice 1)"], "stop", 20, 20),
        ("no_done", [ANSWER, ANSWER + " (choice 1)"], None, None, 20),
        (Behaviour("no_done", finish=True), [ANSWER, ANSWER + " (choice 1)"], "stop", 20, 20),
        ("content_filter", ["fake answer to: ", "fake answer to: what "], "content_filter", 7, 7),
        ("refusal", [REFUSAL_TEXT, REFUSAL_1], "stop", 18, 18),
    ],
    ids=["ok", "no_usage", "slow_stream", "no_done", "no_done_finish", "filter", "refusal"],
)
def test_n_choices_for_each_kind(
    server: FakeOpenAIServer,
    client: OpenAI,
    behaviour: Behaviour | str,
    texts: list[str],
    finish: str | None,
    streamed_usage: int | None,
    usage: int | None,
) -> None:
    server.enqueue(behaviour)
    chunks = _stream(client, n=2, stream_options={"include_usage": True})
    assert _texts(chunks) == dict(enumerate(texts))
    for index in (0, 1):
        finishes = [f for i, f in _finishes(chunks) if i == index]
        assert finishes == [None] * (len(finishes) - 1) + [finish]
    sent = [c.usage.completion_tokens for c in chunks if c.usage is not None]
    assert sent == ([] if streamed_usage is None else [streamed_usage])

    server.enqueue(behaviour)
    resp = client.chat.completions.create(model="m", messages=MESSAGES, n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    if behaviour == "refusal":
        assert [c.message.refusal for c in resp.choices] == texts
        assert [c.message.content for c in resp.choices] == [None, None]
    else:
        assert [c.message.content for c in resp.choices] == texts
    assert [c.finish_reason for c in resp.choices] == [finish, finish]
    assert (resp.usage and resp.usage.completion_tokens) == usage


def test_n_choices_cut_and_stream_error(server: FakeOpenAIServer, client: OpenAI) -> None:
    for behaviour, error in (("cut", openai.APIConnectionError), ("stream_error", openai.APIError)):
        server.enqueue(behaviour)
        received: list[ChatCompletionChunk] = []
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True, n=2)
        with stream, pytest.raises(error):
            for chunk in stream:
                received.append(chunk)
        assert [(c.choices[0].index, c.choices[0].delta.content) for c in received] == [
            (0, ""),
            (0, "fake answer to: "),
            (1, ""),
            (1, "fake answer to: what "),
        ]


def test_refusal(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("refusal")
    chunks = _stream(client, stream_options={"include_usage": True})
    deltas = [c.choices[0].delta for c in chunks[:-1]]
    assert [(d.role, d.content, d.refusal) for d in deltas] == [
        ("assistant", None, ""),
        (None, None, "I'm sorry, but "),
        (None, None, "I can't help "),
        (None, None, "with that."),
        (None, None, None),
    ]
    assert _finishes(chunks) == [(0, None)] * 4 + [(0, "stop")]
    assert "".join(d.refusal or "" for d in deltas) == REFUSAL_TEXT
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8

    # On the wire, as OpenAI sends it: the role chunk has content null and an empty refusal.
    server.enqueue(Behaviour("refusal", text="No."))
    body = _raw_body(server, stream=True)
    assert '"delta":{"role":"assistant","content":null,"refusal":""}' in body
    assert '"delta":{"refusal":"No."},"logprobs":null,"finish_reason":null}' in body
    assert '"delta":{},"logprobs":null,"finish_reason":"stop"}' in body
    assert body.endswith("data: [DONE]\n\n")

    server.enqueue("refusal", Behaviour("refusal", text="Not today."))
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    message = resp.choices[0].message
    assert (message.content, message.refusal) == (None, REFUSAL_TEXT)
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 8
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.refusal == "Not today."
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 2


def test_content_filter(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("content_filter", Behaviour("content_filter", after_chunks=2))
    chunks = _stream(client, stream_options={"include_usage": True})
    assert [c.choices[0].delta.content for c in chunks[:-1]] == ["", "fake answer to: ", None]
    assert _finishes(chunks) == [(0, None), (0, None), (0, "content_filter")]
    empty = chunks[2].choices[0].delta
    assert (empty.role, empty.content, empty.refusal) == (None, None, None)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3

    chunks = _stream(client, stream_options={"include_usage": True})
    assert _texts(chunks) == {0: "fake answer to: what is the "}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6

    server.enqueue("content_filter")
    body = _raw_body(server, stream=True)
    assert '"delta":{},"logprobs":null,"finish_reason":"content_filter"}' in body
    assert body.endswith("data: [DONE]\n\n")

    server.enqueue("content_filter")
    resp = client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "fake answer to: "
    assert resp.choices[0].finish_reason == "content_filter"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 3


def test_quota(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("quota", "quota")
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert err.value.status_code == 429
    assert err.value.code == "insufficient_quota"
    assert err.value.type == "insufficient_quota"
    assert err.value.body == {
        "message": "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }

    with pytest.raises(openai.RateLimitError) as err:
        _stream(client)
    headers = err.value.response.headers
    assert "retry-after" not in headers
    assert "retry-after-ms" not in headers
    assert server.request_count == 2


def test_stream_error(server: FakeOpenAIServer, client: OpenAI) -> None:
    server.enqueue("stream_error")
    received: list[ChatCompletionChunk] = []
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with stream, pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk)
    assert type(err.value) is openai.APIError
    assert err.value.message == STREAM_ERROR["message"]
    assert err.value.body == STREAM_ERROR
    assert [c.choices[0].delta.content for c in received] == ["", "fake answer to: "]

    server.enqueue("stream_error")
    body = _raw_body(server, stream=True, stream_options={"include_usage": True})
    assert body.count("data: ") == 3
    assert body.endswith(
        "data: " + json.dumps({"error": STREAM_ERROR}, separators=(",", ":")) + "\n\n"
    )
    assert "[DONE]" not in body

    server.enqueue("stream_error")  # without streaming there is no stream to break: a 500
    with pytest.raises(openai.InternalServerError) as err500:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert err500.value.status_code == 500
    assert err500.value.body == STREAM_ERROR


@pytest.mark.skipif(sys.platform != "linux", reason="reads the backlog from Linux's TCP_INFO")
def test_listen_backlog(server: FakeOpenAIServer) -> None:
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    info = server._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    # For a listening socket Linux reports the accept queue's limit as tcpi_sacked.
    (max_backlog,) = struct.unpack_from("I", info, 28)
    assert max_backlog == min(BACKLOG, somaxconn)
    assert BACKLOG >= 2048


@pytest.mark.slow
def test_burst_of_streaming_connections(server: FakeOpenAIServer) -> None:
    count = 600
    server.latency_s = 0.5  # keeps the first connections open while the rest arrive

    async def run() -> list[tuple[int, str]]:
        limits = httpx2.Limits(max_connections=count)
        async with httpx2.AsyncClient(limits=limits, timeout=30.0) as raw:

            async def one(i: int) -> tuple[int, str]:
                body = {
                    "model": "m",
                    "messages": [{"role": "user", "content": f"question {i}"}],
                    "stream": True,
                }
                async with raw.stream(
                    "POST", f"{server.base_url}/chat/completions", json=body
                ) as resp:
                    text = (await resp.aread()).decode()
                pieces = [
                    json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                    for line in text.split("\n\n")
                    if line.startswith("data: {")
                ]
                assert text.endswith("data: [DONE]\n\n")
                return resp.status_code, "".join(pieces)

            return await asyncio.gather(*(one(i) for i in range(count)))

    # Both ends of every connection live in this process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * count
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    try:
        results = asyncio.run(run())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [status for status, _ in results] == [200] * count
    assert [answer for _, answer in results] == [
        f"fake answer to: question {i}" for i in range(count)
    ]
    assert server.request_count == count


# ---------------------------------------------------------------- Responses API

QUESTION = "what is the capital of France"
STARTED = ["response.created", "response.in_progress"]
MESSAGE_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
CALL_EVENTS = [
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
]
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "metric": {"type": "boolean"},
        "note": {"type": "string"},
    },
    "required": ["city", "days", "metric"],
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER,
    "strict": False,
}
LOOKUP_TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
CHAT_WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER},
}
WEATHER_ARGS = '{"city":"what is the capital of France","days":1,"metric":true}'
INPUT_TOKENS = 7 + 6  # one item of six words


@pytest.fixture
def strict(server: FakeOpenAIServer) -> Iterator[OpenAI]:
    """A client that validates every body and event against the SDK's types."""
    with OpenAI(
        api_key="test", base_url=server.base_url, max_retries=0, _strict_response_validation=True
    ) as c:
        yield c


def _events(client: OpenAI, **kwargs: Any) -> list[ResponseStreamEvent]:
    kwargs.setdefault("model", "fake-model")
    kwargs.setdefault("input", QUESTION)
    with client.responses.create(stream=True, **kwargs) as stream:
        return list(stream)


def _item_text(item: dict[str, Any]) -> str:
    """The text of a context item's first content part."""
    return str(item["content"][0]["text"])


def _types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def _raw_response_body(server: FakeOpenAIServer, **body: Any) -> str:
    with httpx2.Client() as raw:
        resp = raw.post(f"{server.base_url}/responses", json={"model": "m", **body})
    assert resp.status_code == 200
    return resp.text


def test_responses_stream_events_and_usage(server: FakeOpenAIServer, strict: OpenAI) -> None:
    events = _events(strict)
    assert _types(events) == [*STARTED, *MESSAGE_EVENTS, "response.completed"]
    assert [e.sequence_number for e in events] == list(range(11))
    created, in_progress = events[0], events[1]
    assert isinstance(created, ResponseCreatedEvent)
    assert isinstance(in_progress, ResponseInProgressEvent)
    assert (created.response.status, created.response.output, created.response.usage) == (
        "in_progress",
        [],
        None,
    )
    added = events[2]
    assert isinstance(added, ResponseOutputItemAddedEvent)
    assert added.item.type == "message" and added.item.status == "in_progress"
    assert added.item.content == []
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert [d.delta for d in deltas] == ANSWER_PIECES
    assert {(d.item_id, d.output_index, d.content_index) for d in deltas} == {
        ("msg_fake_1_0", 0, 0)
    }
    done = events[7]
    assert isinstance(done, ResponseTextDoneEvent) and done.text == ANSWER

    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    response = completed.response
    assert (response.id, response.object, response.status, response.model) == (
        "resp_fake_1",
        "response",
        "completed",
        "fake-model",
    )
    assert response.output_text == ANSWER
    assert (response.previous_response_id, response.conversation, response.error) == (None,) * 3
    assert response.incomplete_details is None
    assert response.usage is not None
    assert response.usage.model_dump() == {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {
            "cached_tokens": 0,
            "cache_write_tokens": 0,
            "cache_write_tokens_details": None,
        },
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + 9,
    }
    assert server.requests[0]["stream"] is True
    assert server.request_count == 1
    assert server.path_counts == {"POST /v1/responses": 1}


def test_responses_wire_framing(server: FakeOpenAIServer) -> None:
    body = _raw_response_body(server, input=QUESTION, stream=True)
    frames = body.split("\n\n")
    assert frames[-1] == ""  # the body ends with a whole frame, and there is no [DONE]
    assert "[DONE]" not in body
    parsed = []
    for frame in frames[:-1]:
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[6:])
        assert data["type"] == event_line[7:]
        parsed.append(data)
    assert [d["sequence_number"] for d in parsed] == list(range(11))
    assert parsed[-1]["response"]["store"] is True
    assert parsed[3]["part"] == {
        "type": "output_text",
        "annotations": [],
        "logprobs": [],
        "text": "",
    }


def test_responses_without_streaming(server: FakeOpenAIServer, strict: OpenAI) -> None:
    response = strict.responses.create(model="m-2", input=QUESTION, temperature=0.5, top_p=0.9)
    assert (response.status, response.model, response.output_text) == ("completed", "m-2", ANSWER)
    assert (response.temperature, response.top_p) == (0.5, 0.9)
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (INPUT_TOKENS, 9)
    message = response.output[0]
    assert message.type == "message"
    assert (message.id, message.status, message.role) == ("msg_fake_1_0", "completed", "assistant")
    assert strict.responses.retrieve(response.id).model_dump() == response.model_dump()
    assert server.path_counts == {
        "POST /v1/responses": 1,
        f"GET /v1/responses/{response.id}": 1,
    }
    assert server.request_count == 1  # a GET is not a model request


def test_responses_input_items_and_instructions(server: FakeOpenAIServer, strict: OpenAI) -> None:
    response = strict.responses.create(
        model="m",
        instructions="be brief",
        input=[
            {"role": "system", "content": "you are terse"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"role": "assistant", "content": "hello"},
            {"role": "developer", "content": "answer in English"},
            {"role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
        ],
        reasoning={"effort": "low"},
        metadata={"run": "1"},
        parallel_tool_calls=False,
        include=["message.output_text.logprobs"],
        text={"verbosity": "low"},
    )
    assert response.output_text == ANSWER
    assert response.instructions == "be brief"
    assert response.metadata == {"run": "1"}
    assert response.parallel_tool_calls is False
    assert response.text is not None and response.text.verbosity == "low"
    assert response.reasoning is not None and response.reasoning.effort == "low"
    seen = server.context_of(response.id)
    assert [(i["role"], i["content"][0]["type"], i["content"][0]["text"]) for i in seen] == [
        ("developer", "input_text", "be brief"),
        ("system", "input_text", "you are terse"),
        ("user", "input_text", "hi"),
        ("assistant", "output_text", "hello"),
        ("developer", "input_text", "answer in English"),
        ("user", "input_text", QUESTION),
    ]
    assert {i["type"] for i in seen} == {"message"}
    assert response.usage is not None
    assert response.usage.input_tokens == 6 * 7 + 2 + 3 + 1 + 1 + 3 + 6


def test_previous_response_id_continues(server: FakeOpenAIServer, strict: OpenAI) -> None:
    first = strict.responses.create(model="m", input="first question", instructions="be brief")
    events = _events(strict, input="second question", previous_response_id=first.id)
    second = events[-1]
    assert isinstance(second, ResponseCompletedEvent)
    assert second.response.previous_response_id == first.id
    assert second.response.output_text == "fake answer to: second question"
    seen = server.context_of(second.response.id)
    # The earlier instructions are not carried over; its input and output are.
    assert [(i["role"], _item_text(i)) for i in seen] == [
        ("user", "first question"),
        ("assistant", "fake answer to: first question"),
        ("user", "second question"),
    ]
    assert seen[1]["id"] == first.output[0].id
    third = strict.responses.create(
        model="m", input="third question", previous_response_id=second.response.id
    )
    assert [_item_text(i) for i in server.context_of(third.id)][-2:] == [
        "fake answer to: second question",
        "third question",
    ]
    assert third.usage is not None
    assert third.usage.input_tokens == 5 * 7 + 2 + 5 + 2 + 5 + 2


def test_unstored_response_cannot_be_continued(server: FakeOpenAIServer, strict: OpenAI) -> None:
    unstored = strict.responses.create(model="m", input=QUESTION, store=False)
    assert unstored.output_text == ANSWER
    assert server.context_of(unstored.id)[0]["content"][0]["text"] == QUESTION
    with pytest.raises(openai.BadRequestError) as err:
        strict.responses.create(model="m", input="more", previous_response_id=unstored.id)
    assert err.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError) as missing:
        strict.responses.retrieve(unstored.id)
    assert missing.value.body == {
        "message": f"Response with id '{unstored.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_unknown_previous_response_id_is_400(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue("500")  # a refused request leaves the script alone
    with pytest.raises(openai.BadRequestError) as err:
        _events(strict, previous_response_id="resp_nope")
    assert err.value.status_code == 400
    assert err.value.body == {
        "message": "Previous response with id 'resp_nope' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    assert server.pending == 1


@pytest.mark.parametrize(("param", "value"), [("seed", 1), ("stop", ["\n"]), ("n", 2)])
def test_unsupported_parameters_are_400(strict: OpenAI, param: str, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        strict.responses.create(model="m", input=QUESTION, extra_body={param: value})
    assert err.value.body == {
        "message": f"Unsupported parameter: '{param}'.",
        "type": "invalid_request_error",
        "param": param,
        "code": "unsupported_parameter",
    }


def test_responses_request_errors(server: FakeOpenAIServer, strict: OpenAI) -> None:
    with httpx2.Client() as raw:
        resp = raw.post(f"{server.base_url}/responses", json={"input": "hi"})
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == "missing_required_parameter"
        assert resp.json()["error"]["param"] == "model"
        resp = raw.post(f"{server.base_url}/responses", json={"model": "m", "input": {"a": 1}})
        assert resp.status_code == 400
        assert resp.json()["error"] == {
            "message": "Invalid type for 'input': expected one of a string or array of input "
            "items, but got an object instead.",
            "type": "invalid_request_error",
            "param": "input",
            "code": "invalid_type",
        }
    with pytest.raises(openai.BadRequestError) as err:  # a Chat Completions tool, nested
        strict.responses.create(model="m", input="hi", tools=[CHAT_WEATHER_TOOL])
    assert err.value.body["message"] == "Missing required parameter: 'tools[0].name'."
    conversation = strict.conversations.create()
    with pytest.raises(openai.BadRequestError) as both:
        first = strict.responses.create(model="m", input="hi")
        strict.responses.create(
            model="m", input="hi", previous_response_id=first.id, conversation=conversation.id
        )
    assert both.value.code == "mutually_exclusive_parameters"


def test_conversations(server: FakeOpenAIServer, strict: OpenAI) -> None:
    conversation = strict.conversations.create(
        items=[{"role": "user", "content": "first question"}], metadata={"topic": "capitals"}
    )
    assert conversation.id == "conv_fake_1"
    assert (conversation.object, conversation.metadata) == ("conversation", {"topic": "capitals"})
    assert isinstance(conversation.created_at, int)
    assert strict.conversations.retrieve(conversation.id).model_dump() == conversation.model_dump()

    second = strict.responses.create(
        model="m", input="second question", conversation=conversation.id
    )
    assert second.conversation is not None and second.conversation.id == conversation.id
    assert [_item_text(i) for i in server.context_of(second.id)] == [
        "first question",
        "second question",
    ]
    events = _events(strict, input=QUESTION, conversation={"id": conversation.id})
    third = events[-1]
    assert isinstance(third, ResponseCompletedEvent)
    assert third.response.output_text == ANSWER
    assert [_item_text(i) for i in server.context_of(third.response.id)] == [
        "first question",
        "second question",
        "fake answer to: second question",
        QUESTION,
    ]

    expected = [
        ("user", "first question"),
        ("user", "second question"),
        ("assistant", "fake answer to: second question"),
        ("user", QUESTION),
        ("assistant", ANSWER),
    ]
    items = list(strict.conversations.items.list(conversation.id, order="asc"))
    assert [(i.role, i.content[0].text) for i in items] == expected
    assert [i.id for i in items][2] == second.output[0].id
    assert {i.status for i in items} == {"completed"}
    newest_first = list(strict.conversations.items.list(conversation.id, limit=2))
    assert [(i.role, i.content[0].text) for i in newest_first] == expected[::-1]
    items_path = f"GET /v1/conversations/{conversation.id}/items"
    assert server.path_counts[items_path] == 1 + 3  # the default order pages by two
    assert server.conversation_items(conversation.id)[0]["content"][0]["text"] == "first question"

    added = strict.conversations.items.create(
        conversation.id, items=[{"role": "user", "content": "an aside"}]
    )
    assert [i.role for i in added.data] == ["user"]
    fourth = strict.responses.create(model="m", input="again", conversation=conversation.id)
    assert [_item_text(i) for i in server.context_of(fourth.id)][-2:] == ["an aside", "again"]


def test_unknown_conversation_is_404(server: FakeOpenAIServer, strict: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        strict.responses.create(model="m", input="hi", conversation="conv_nope")
    assert err.value.body == {
        "message": "Conversation with id 'conv_nope' not found.",
        "type": "invalid_request_error",
        "param": "conversation",
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        strict.conversations.items.list("conv_nope").to_dict()
    assert server.request_count == 1


def _call_args(response: Any) -> dict[str, Any]:
    call = response.output[-1]
    assert call.type == "function_call"
    return json.loads(call.arguments)


def test_function_tool_round_trip_with_previous_response_id(
    server: FakeOpenAIServer, strict: OpenAI
) -> None:
    events = _events(strict, input=QUESTION, tools=[WEATHER_TOOL, LOOKUP_TOOL])
    assert _types(events) == [*STARTED, *CALL_EVENTS, "response.completed"]
    added = events[2]
    assert isinstance(added, ResponseOutputItemAddedEvent)
    assert added.item.model_dump(exclude_none=True) == {
        "id": "fc_fake_1_0",
        "type": "function_call",
        "status": "in_progress",
        "arguments": "",
        "call_id": "call_fake_1_0",
        "name": "get_weather",
    }
    deltas = [e for e in events if isinstance(e, ResponseFunctionCallArgumentsDeltaEvent)]
    assert "".join(d.delta for d in deltas) == WEATHER_ARGS
    assert all(d.delta for d in deltas)
    assert {(d.item_id, d.output_index) for d in deltas} == {("fc_fake_1_0", 0)}
    args_done = events[5]
    assert isinstance(args_done, ResponseFunctionCallArgumentsDoneEvent)
    assert args_done.arguments == WEATHER_ARGS
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    call = completed.response.output[0]
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.status, call.name, call.call_id) == ("completed", "get_weather", "call_fake_1_0")
    assert completed.response.status == "completed"
    assert completed.response.output_text == ""
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == len(WEATHER_ARGS.split())

    answer = strict.responses.create(
        model="m",
        previous_response_id=completed.response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER_TOOL, LOOKUP_TOOL],
    )
    assert answer.output_text == f"{ANSWER} (tool get_weather said: sunny)"
    assert [i["type"] for i in server.context_of(answer.id)] == [
        "message",
        "function_call",
        "function_call_output",
    ]


def test_function_tool_round_trip_with_input_kept_by_the_client(
    server: FakeOpenAIServer, strict: OpenAI
) -> None:
    question = [{"role": "user", "content": QUESTION}]
    first = strict.responses.create(
        model="m", input=question, tools=[WEATHER_TOOL], store=False, tool_choice="required"
    )
    call = first.output[0]
    assert isinstance(call, ResponseFunctionToolCall)
    assert _call_args(first) == {"city": QUESTION, "days": 1, "metric": True}
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}
    second = strict.responses.create(
        model="m",
        input=[*question, call.model_dump(exclude_none=True), output],
        tools=[WEATHER_TOOL],
        store=False,
    )
    assert second.output_text == f"{ANSWER} (tool get_weather said: rain)"

    with pytest.raises(openai.BadRequestError) as orphan:  # an output without its call
        strict.responses.create(model="m", input=[*question, output], tools=[WEATHER_TOOL])
    assert orphan.value.body == {
        "message": "No tool call found for function call output with call_id call_fake_1_0.",
        "type": "invalid_request_error",
        "param": "input",
        "code": None,
    }
    stored = strict.responses.create(model="m", input=question, tools=[WEATHER_TOOL])
    with pytest.raises(openai.BadRequestError) as unanswered:  # a call left without output
        strict.responses.create(model="m", input="and?", previous_response_id=stored.id)
    assert unanswered.value.body["message"] == (
        f"No tool output found for function call {_call_id(stored)}."
    )


def _call_id(response: Any) -> str:
    return str(response.output[-1].call_id)


def test_tool_choice(server: FakeOpenAIServer, strict: OpenAI) -> None:
    tools = [WEATHER_TOOL, LOOKUP_TOOL]
    named = strict.responses.create(
        model="m", input=QUESTION, tools=tools, tool_choice={"type": "function", "name": "lookup"}
    )
    assert (named.output[0].type, _call_args(named)) == ("function_call", {})
    assert named.output[0].name == "lookup"
    assert named.tool_choice.name == "lookup"
    none = strict.responses.create(model="m", input=QUESTION, tools=tools, tool_choice="none")
    assert none.output_text == ANSWER
    assert strict.responses.create(model="m", input=QUESTION).output_text == ANSWER  # no tools


def test_no_tool_and_tool_twice_on_responses(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue("no_tool")
    assert strict.responses.create(model="m", input=QUESTION, tools=[WEATHER_TOOL]).output_text == (
        ANSWER
    )

    server.enqueue("tool_twice")
    response = strict.responses.create(model="m", input=QUESTION, tools=[WEATHER_TOOL])
    rounds = []
    while response.output[-1].type == "function_call":
        rounds.append(_call_id(response))
        output = {
            "type": "function_call_output",
            "call_id": rounds[-1],
            "output": f"r{len(rounds)}",
        }
        response = strict.responses.create(
            model="m", input=[output], previous_response_id=response.id, tools=[WEATHER_TOOL]
        )
    assert rounds == ["call_fake_2_0", "call_fake_3_0"]
    assert response.output_text == f"{ANSWER} (tool get_weather said: r2)"
    assert server.pending == 0

    # Without it, a tool result is answered at once.
    first = strict.responses.create(model="m", input=QUESTION, tools=[WEATHER_TOOL])
    output = {"type": "function_call_output", "call_id": _call_id(first), "output": "r1"}
    then = strict.responses.create(
        model="m", input=[output], previous_response_id=first.id, tools=[WEATHER_TOOL]
    )
    assert then.output_text == f"{ANSWER} (tool get_weather said: r1)"


def _chat_stream(client: OpenAI, messages: list[Any], **kwargs: Any) -> list[ChatCompletionChunk]:
    stream = client.chat.completions.create(
        model="m", messages=messages, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    with stream:
        return list(stream)


def test_chat_tool_call_round_trip(server: FakeOpenAIServer, strict: OpenAI) -> None:
    chunks = _chat_stream(strict, MESSAGES, tools=[CHAT_WEATHER_TOOL])
    deltas = [c.choices[0].delta.model_dump(exclude_none=True) for c in chunks[:-1]]
    first_half, second_half = (
        WEATHER_ARGS[: len(WEATHER_ARGS) // 2],
        WEATHER_ARGS[len(WEATHER_ARGS) // 2 :],
    )
    assert deltas == [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_fake_1_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ],
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": first_half}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": second_half}}]},
        {},
    ]
    assert [c.choices[0].delta.content for c in chunks[:-1]] == [None] * 4
    assert _finishes(chunks) == [(0, None)] * 3 + [(0, "tool_calls")]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(WEATHER_ARGS.split())

    resp = strict.chat.completions.create(model="m", messages=MESSAGES, tools=[CHAT_WEATHER_TOOL])
    message = resp.choices[0].message
    assert (message.content, resp.choices[0].finish_reason) == (None, "tool_calls")
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert (call.id, call.type, call.function.name, call.function.arguments) == (
        "call_fake_2_0",
        "function",
        "get_weather",
        WEATHER_ARGS,
    )
    follow_up = [
        *MESSAGES,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    chunks = _chat_stream(strict, follow_up, tools=[CHAT_WEATHER_TOOL])
    assert _texts(chunks) == {0: f"{ANSWER} (tool get_weather said: sunny)"}
    assert _finishes(chunks)[-1] == (0, "stop")
    assert server.requests[-1]["messages"][2]["tool_calls"][0]["id"] == "call_fake_2_0"


def test_chat_tool_calls_named_none_and_n(server: FakeOpenAIServer, strict: OpenAI) -> None:
    lookup = {"type": "function", "function": {"name": "lookup"}}
    named = strict.chat.completions.create(
        model="m",
        messages=MESSAGES,
        tools=[CHAT_WEATHER_TOOL, lookup],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    assert named.choices[0].message.tool_calls is not None
    function = named.choices[0].message.tool_calls[0].function
    assert (function.name, function.arguments) == ("lookup", "{}")
    none = strict.chat.completions.create(
        model="m", messages=MESSAGES, tools=[CHAT_WEATHER_TOOL], tool_choice="none"
    )
    assert (none.choices[0].message.content, none.choices[0].finish_reason) == (ANSWER, "stop")

    chunks = _chat_stream(strict, MESSAGES, tools=[CHAT_WEATHER_TOOL], n=2)
    ids = [
        (c.choices[0].index, c.choices[0].delta.tool_calls[0].id)
        for c in chunks[:-1]
        if c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].id
    ]
    assert ids == [(0, "call_fake_3_0"), (1, "call_fake_3_1")]
    assert [f for f in _finishes(chunks) if f[1]] == [(0, "tool_calls"), (1, "tool_calls")]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2 * len(WEATHER_ARGS.split())


def test_chat_tool_messages_out_of_order_are_400(strict: OpenAI) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    asked = {"role": "assistant", "content": None, "tool_calls": [call]}
    cases = [
        (
            [*MESSAGES, {"role": "tool", "tool_call_id": "call_1", "content": "x"}],
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
            "message with 'tool_calls'.",
            "messages.[2].role",
        ),
        (
            [*MESSAGES, asked, {"role": "user", "content": "and?"}],
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response "
            "messages: call_1",
            "messages.[2].role",
        ),
        (
            [*MESSAGES, asked, {"role": "tool", "tool_call_id": "call_2", "content": "x"}],
            "Invalid parameter: 'tool_call_id' of 'call_2' not found in 'tool_calls' of previous "
            "message.",
            "messages.[3].tool_call_id",
        ),
    ]
    for messages, message, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            strict.chat.completions.create(model="m", messages=messages, tools=[CHAT_WEATHER_TOOL])
        assert err.value.body == {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    with pytest.raises(openai.BadRequestError) as flat:  # a Responses tool, not nested
        strict.chat.completions.create(model="m", messages=MESSAGES, tools=[WEATHER_TOOL])
    assert flat.value.body["param"] == "tools[0].function"


def test_no_tool_and_tool_twice_on_chat(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue("no_tool")
    resp = strict.chat.completions.create(model="m", messages=MESSAGES, tools=[CHAT_WEATHER_TOOL])
    assert resp.choices[0].message.content == ANSWER

    server.enqueue("tool_twice")
    messages: list[Any] = list(MESSAGES)
    rounds = 0
    while True:
        resp = strict.chat.completions.create(
            model="m", messages=messages, tools=[CHAT_WEATHER_TOOL]
        )
        if resp.choices[0].finish_reason != "tool_calls":
            break
        rounds += 1
        message = resp.choices[0].message
        assert message.tool_calls is not None
        messages += [
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": f"r{rounds}"},
        ]
    assert rounds == 2
    assert resp.choices[0].message.content == f"{ANSWER} (tool get_weather said: r2)"


def test_web_search(server: FakeOpenAIServer, strict: OpenAI) -> None:
    for tool in ("web_search", "web_search_preview"):
        events = _events(strict, tools=[{"type": tool}])
        assert _types(events) == [
            *STARTED,
            "response.output_item.added",
            "response.output_item.done",
            *MESSAGE_EVENTS[:5],
            "response.output_text.annotation.added",
            *MESSAGE_EVENTS[5:],
            "response.completed",
        ]
        completed = events[-1]
        assert isinstance(completed, ResponseCompletedEvent)
        search, message = completed.response.output
        assert isinstance(search, ResponseFunctionWebSearch)
        assert search.model_dump(exclude_none=True) == {
            "id": search.id,
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search", "query": QUESTION},
        }
        assert message.type == "message" and message.content[0].type == "output_text"
        (citation,) = message.content[0].annotations
        assert citation.model_dump() == {
            "type": "url_citation",
            "url": "https://example.test/what-is-the-capital-of-france",
            "title": f"Search result for: {QUESTION}",
            "start_index": len("fake answer to: "),
            "end_index": len(ANSWER),
        }
        assert ANSWER[citation.start_index : citation.end_index] == QUESTION
        added = events[2]
        assert isinstance(added, ResponseOutputItemAddedEvent)
        assert added.item.status == "in_progress"


def test_file_search(server: FakeOpenAIServer, strict: OpenAI) -> None:
    tool = {"type": "file_search", "vector_store_ids": ["vs_1"]}
    plain = strict.responses.create(model="m", input=QUESTION, tools=[tool])
    search, message = plain.output
    assert isinstance(search, ResponseFileSearchToolCall)
    assert (search.status, search.queries, search.results) == ("completed", [QUESTION], None)
    assert message.type == "message" and message.content[0].type == "output_text"
    assert [a.model_dump() for a in message.content[0].annotations] == [
        {
            "type": "file_citation",
            "file_id": "file-fake0001",
            "filename": "notes.md",
            "index": len(ANSWER),
        }
    ]
    events = _events(strict, tools=[tool], include=["file_search_call.results"])
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    search = completed.response.output[0]
    assert isinstance(search, ResponseFileSearchToolCall)
    assert search.results is not None
    assert [r.model_dump() for r in search.results] == [
        {
            "attributes": {},
            "file_id": "file-fake0001",
            "filename": "notes.md",
            "score": 0.9,
            "text": QUESTION,
        }
    ]


def test_code_interpreter(server: FakeOpenAIServer, strict: OpenAI) -> None:
    tool = {"type": "code_interpreter", "container": {"type": "auto"}}
    plain = strict.responses.create(model="m", input=QUESTION, tools=[tool])
    call = plain.output[0]
    assert isinstance(call, ResponseCodeInterpreterToolCall)
    assert call.model_dump(exclude_none=True) == {
        "id": "ci_fake_1_0",
        "type": "code_interpreter_call",
        "status": "completed",
        "code": f'print("{QUESTION}")',
        "container_id": "cntr_fake_1",
    }
    assert plain.output_text == ANSWER
    events = _events(
        strict,
        tools=[{"type": "code_interpreter", "container": "cntr_mine"}],
        include=["code_interpreter_call.outputs"],
    )
    assert _types(events)[2:4] == ["response.output_item.added", "response.output_item.done"]
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    call = completed.response.output[0]
    assert isinstance(call, ResponseCodeInterpreterToolCall)
    assert call.container_id == "cntr_mine"
    assert call.outputs is not None
    assert [o.model_dump() for o in call.outputs] == [{"type": "logs", "logs": QUESTION}]


def test_max_output_tokens_ends_incomplete(server: FakeOpenAIServer, strict: OpenAI) -> None:
    events = _events(strict, max_output_tokens=3)
    assert _types(events) == [
        *STARTED,
        *MESSAGE_EVENTS[:2],
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        *MESSAGE_EVENTS[5:],
        "response.incomplete",
    ]
    last = events[-1]
    assert isinstance(last, ResponseIncompleteEvent)
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output_text == "fake answer to:"
    assert last.response.output[0].status == "incomplete"
    assert last.response.usage is not None
    assert last.response.usage.output_tokens == 3
    assert last.response.max_output_tokens == 3
    resp = strict.responses.create(model="m", input=QUESTION, max_output_tokens=100)
    assert (resp.status, resp.output_text) == ("completed", ANSWER)


def test_json_schema_text_format(strict: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer"},
            "area": {"type": "number"},
            "capital": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "size": {"type": "string", "enum": ["small", "large"]},
            "where": {
                "type": "object",
                "properties": {"country": {"type": "string"}},
                "required": ["country"],
                "additionalProperties": False,
            },
        },
        "required": ["city", "population", "area", "capital", "tags", "size", "where"],
        "additionalProperties": False,
    }
    text = {"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}}
    resp = strict.responses.create(model="m", input=QUESTION, text=text)
    assert json.loads(resp.output_text) == {
        "city": QUESTION,
        "population": 1,
        "area": 1,
        "capital": True,
        "tags": [],
        "size": "small",
        "where": {"country": QUESTION},
    }
    assert resp.text is not None and resp.text.format is not None
    assert resp.text.format.type == "json_schema"


# ---------------------------------------------------------------- Responses failures


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("429", openai.RateLimitError, 429),
        ("quota", openai.RateLimitError, 429),
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("401", openai.AuthenticationError, 401),
        ("400_context", openai.BadRequestError, 400),
    ],
)
def test_responses_error_statuses(
    server: FakeOpenAIServer, strict: OpenAI, kind: str, error: type[Exception], status: int
) -> None:
    server.enqueue(kind, kind)
    with pytest.raises(error) as streamed:
        _events(strict)
    with pytest.raises(error) as plain:
        strict.responses.create(model="m", input=QUESTION)
    assert streamed.value.status_code == plain.value.status_code == status
    if kind == "400_context":
        assert plain.value.param == "input"
        assert "128013 tokens" in plain.value.message
    assert server.request_count == 2


def test_responses_hang_and_latency(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue(Behaviour("hang", hang_s=0.2))
    with pytest.raises(openai.APIConnectionError) as err:
        strict.responses.create(model="m", input=QUESTION)
    assert isinstance(err.value.__cause__, httpx2.RemoteProtocolError)
    server.latency_s = 0.3
    start = time.monotonic()
    strict.responses.create(model="m", input=QUESTION)
    assert time.monotonic() - start >= 0.28


def test_responses_cut(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue("cut", Behaviour("cut", after_chunks=2), "cut")
    for deltas in (1, 2):
        received: list[Any] = []
        stream = strict.responses.create(model="m", input=QUESTION, stream=True)
        with stream, pytest.raises(openai.APIConnectionError) as err:
            received.extend(stream)
        assert isinstance(err.value.__cause__, httpx2.RemoteProtocolError)
        assert _types(received) == [
            *STARTED,
            *MESSAGE_EVENTS[:2],
            *["response.output_text.delta"] * deltas,
        ]
    with pytest.raises(openai.APIConnectionError):
        strict.responses.create(model="m", input=QUESTION)
    with pytest.raises(openai.BadRequestError):  # a cut response is not kept
        strict.responses.create(model="m", input="more", previous_response_id="resp_fake_1")
    assert strict.responses.create(model="m", input=QUESTION).output_text == ANSWER


def test_responses_no_done(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue(
        "no_done", Behaviour("no_done", finish=True), Behaviour("no_done", after_chunks=1)
    )
    assert _types(_events(strict)) == [*STARTED, *MESSAGE_EVENTS[:5]]
    assert _types(_events(strict)) == [*STARTED, *MESSAGE_EVENTS]
    assert _types(_events(strict)) == [*STARTED, *MESSAGE_EVENTS[:3]]
    server.enqueue("no_done")
    body = _raw_response_body(server, input=QUESTION, stream=True)
    assert body.count("event: ") == 7
    assert body.endswith('"logprobs":[],"sequence_number":6}\n\n')  # whole frames, ended cleanly
    assert "response.completed" not in body

    server.enqueue("no_done")
    resp = strict.responses.create(model="m", input=QUESTION)
    assert (resp.status, resp.output_text) == ("in_progress", ANSWER)
    with pytest.raises(openai.BadRequestError):  # an unfinished response is not kept
        strict.responses.create(model="m", input="more", previous_response_id=resp.id)


def test_responses_failed(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue("failed", Behaviour("failed", after_chunks=2), "failed")
    events = _events(strict)
    assert _types(events) == [*STARTED, "response.failed"]
    failed = events[-1]
    assert isinstance(failed, ResponseFailedEvent)
    assert failed.sequence_number == 2
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert failed.response.error.model_dump(exclude_none=True) == {
        "code": "server_error",
        "message": "The model failed to generate a response.",
    }
    assert failed.response.usage is not None
    assert (failed.response.usage.input_tokens, failed.response.usage.output_tokens) == (13, 0)

    events = _events(strict)
    assert _types(events) == [*STARTED, *MESSAGE_EVENTS[:4], "response.failed"]
    assert isinstance(events[-1], ResponseFailedEvent)
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.output_tokens == 6

    resp = strict.responses.create(model="m", input=QUESTION)
    assert (resp.status, resp.output) == ("failed", [])
    assert resp.error is not None and resp.error.code == "server_error"

    server.enqueue("failed")  # on Chat Completions, a server error
    with pytest.raises(openai.InternalServerError):
        strict.chat.completions.create(model="m", messages=MESSAGES)


def test_responses_incomplete(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue(
        "incomplete",
        Behaviour("incomplete", reason="content_filter", after_chunks=2),
        "content_filter",
        "incomplete",
    )
    expected = [
        ("max_output_tokens", "fake answer to: ", 1),
        ("content_filter", "fake answer to: what is the ", 2),
        ("content_filter", "fake answer to: ", 1),
    ]
    for reason, text, deltas in expected:
        events = _events(strict)
        assert _types(events) == [
            *STARTED,
            *MESSAGE_EVENTS[:2],
            *["response.output_text.delta"] * deltas,
            *MESSAGE_EVENTS[5:],
            "response.incomplete",
        ]
        last = events[-1]
        assert isinstance(last, ResponseIncompleteEvent)
        assert last.response.incomplete_details is not None
        assert (last.response.status, last.response.incomplete_details.reason) == (
            "incomplete",
            reason,
        )
        assert last.response.output_text == text
        assert last.response.usage is not None
        assert last.response.usage.output_tokens == len(text.split())
    resp = strict.responses.create(model="m", input=QUESTION)
    assert (resp.status, resp.output_text) == ("incomplete", "fake answer to: ")
    more = strict.responses.create(model="m", input="more", previous_response_id=resp.id)
    assert more.output_text == "fake answer to: more"  # an incomplete response is kept

    server.enqueue("incomplete", Behaviour("incomplete", reason="content_filter"))
    chunks = _stream(strict, stream_options={"include_usage": True})
    assert _finishes(chunks)[-1] == (0, "length")
    assert _texts(chunks) == {0: "fake answer to: "}
    resp_chat = strict.chat.completions.create(model="m", messages=MESSAGES)
    assert resp_chat.choices[0].finish_reason == "content_filter"


def test_responses_stream_error(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue("stream_error")
    events = _events(strict)
    assert _types(events) == [*STARTED, *MESSAGE_EVENTS[:3], "error"]
    error = events[-1]
    assert isinstance(error, ResponseErrorEvent)
    assert error.model_dump() == {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error while processing your request.",
        "param": None,
        "sequence_number": 5,
    }
    server.enqueue("stream_error")
    body = _raw_response_body(server, input=QUESTION, stream=True)
    assert body.endswith(
        'event: error\ndata: {"type":"error","code":"server_error","message":"The server had an '
        'error while processing your request.","param":null,"sequence_number":5}\n\n'
    )
    server.enqueue("stream_error")
    with pytest.raises(openai.InternalServerError):
        strict.responses.create(model="m", input=QUESTION)


def test_responses_refusal(server: FakeOpenAIServer, strict: OpenAI) -> None:
    server.enqueue("refusal")
    events = _events(strict, tools=[WEATHER_TOOL, {"type": "web_search"}])
    assert _types(events) == [
        *STARTED,
        "response.output_item.added",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    part_added = events[3]
    assert isinstance(part_added, ResponseContentPartAddedEvent)
    assert part_added.part.model_dump() == {"type": "refusal", "refusal": ""}
    refusal_deltas = [e for e in events if isinstance(e, ResponseRefusalDeltaEvent)]
    assert "".join(e.delta for e in refusal_deltas) == REFUSAL_TEXT
    refusal_done = events[7]
    assert isinstance(refusal_done, ResponseRefusalDoneEvent)
    assert refusal_done.refusal == REFUSAL_TEXT
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    (message,) = completed.response.output
    assert message.type == "message"
    assert message.content[0].model_dump() == {"type": "refusal", "refusal": REFUSAL_TEXT}
    assert completed.response.output_text == ""
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == 8


def test_responses_malformed_bad_shape_slow_and_no_usage(server: FakeOpenAIServer) -> None:
    with OpenAI(api_key="test", base_url=server.base_url, max_retries=0) as lax:
        server.enqueue("malformed")
        received: list[Any] = []
        with pytest.raises(json.JSONDecodeError):
            received.extend(lax.responses.create(model="m", input=QUESTION, stream=True))
        assert _types(received) == [*STARTED, *MESSAGE_EVENTS[:3]]

        server.enqueue("bad_shape")
        events = list(lax.responses.create(model="m", input=QUESTION, stream=True))
        assert events[5] == ["not", "an", "event"]
        assert [getattr(e, "type", None) for e in events][-1] == "response.completed"

        server.enqueue(Behaviour("slow_stream", gap_s=0.1), "no_usage")
        with lax.responses.create(model="m", input=QUESTION, stream=True) as stream:
            arrivals = [time.monotonic() for e in stream if e.type == "response.output_text.delta"]
        assert len(arrivals) == 3
        assert arrivals[2] - arrivals[0] >= 0.15
        assert lax.responses.create(model="m", input=QUESTION).usage is None


def test_responses_async_concurrent(server: FakeOpenAIServer) -> None:
    async def run() -> list[str]:
        async with AsyncOpenAI(
            api_key="test",
            base_url=server.base_url,
            max_retries=0,
            _strict_response_validation=True,
        ) as c:
            conversation = await c.conversations.create()

            async def one(i: int) -> str:
                stream = await c.responses.create(
                    model="m", input=f"question {i}", stream=True, conversation=conversation.id
                )
                async with stream:
                    return "".join(
                        [e.delta async for e in stream if e.type == "response.output_text.delta"]
                    )

            return await asyncio.gather(*(one(i) for i in range(10)))

    assert asyncio.run(run()) == [f"fake answer to: question {i}" for i in range(10)]
    assert len(server.conversation_items("conv_fake_1")) == 20


def test_responses_stream_helper_accumulates(strict: OpenAI) -> None:
    """The SDK's stream helper checks each event against its snapshot of the response."""
    tools = [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    with strict.responses.stream(model="m", input=QUESTION, tools=tools) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == ANSWER
    assert [item.type for item in final.output] == [
        "web_search_call",
        "file_search_call",
        "message",
    ]
    strict_tool = {**WEATHER_TOOL, "strict": True, "parameters": {**WEATHER, "required": ["city"]}}
    with strict.responses.stream(model="m", input=QUESTION, tools=[strict_tool]) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call"
    assert call.parsed_arguments == {"city": QUESTION}
