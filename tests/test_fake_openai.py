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

import httpx2
import openai
import pytest
from fake_openai import BACKLOG, REFUSAL_TEXT, Behaviour, FakeOpenAIServer, free_port
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionChunk

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
