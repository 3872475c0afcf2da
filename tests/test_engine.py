"""stream_completion reading the streams OpenAI-compatible servers send, chunk by chunk."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import openai
import pytest
from openai import AsyncOpenAI

from runner.base.record import TokenUsage
from runner.wire.chat_completions import stream_completion
from runner.wire.completion import Completion, IncompleteStreamError, MalformedChunkError, Progress

MESSAGES = [{"role": "user", "content": "hi"}]


def stream(
    *events: Any, done: bool = True, params: dict[str, Any] | None = None, progress: Any = None
) -> Completion:
    """Answer one streamed call with ``events`` (dicts are sent as JSON, strings as they are),
    then ``data: [DONE]`` unless ``done`` is false (the body just ends)."""
    sent: list[dict[str, Any]] = []
    params = {"seed": 3} if params is None else params

    def handle(request: httpx2.Request) -> httpx2.Response:
        assert request.url == "http://server.test/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer k"
        sent.append(json.loads(request.content))
        lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
        body = "".join(f"data: {line}\n\n" for line in lines) + ("data: [DONE]\n\n" if done else "")
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async def main() -> Completion:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handle))
        client = AsyncOpenAI(
            api_key="k", base_url="http://server.test/v1", max_retries=0, http_client=http
        )
        try:
            body = {"model": "m-1", "messages": MESSAGES, **params}
            return await stream_completion(client, body, timeout_s=5, progress=progress)
        finally:
            await client.close()

    completion = asyncio.run(main())
    assert sent == [
        {
            "model": "m-1",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
            **params,
        }
    ]
    return completion


def content(text: str | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    return {"id": "c-1", "model": "m-1-2026", "choices": [choice], **extra}


def test_answer_provenance_and_usage_details() -> None:
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 2,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    completion = stream(
        content("", system_fingerprint="fp_1"),
        content("Hello"),
        content(" there", "stop"),
        {"id": "c-1", "choices": [], "usage": usage},
    )
    assert completion.answer == "Hello there"
    assert completion.finish_reason == "stop"
    assert (completion.response_id, completion.served_model) == ("c-1", "m-1-2026")
    assert completion.system_fingerprint == "fp_1"
    assert completion.usage == TokenUsage(9, 2, 11, 4, 1, source="api")
    assert completion.ttft_s is not None


def test_nulls_other_servers_send_are_read_as_nothing() -> None:
    completion = stream(
        {"id": "c-1", "choices": None, "prompt_filter_results": []},  # Azure's first chunk
        {"id": "c-1", "choices": [{"index": 0, "delta": None, "finish_reason": None}]},
        content(None),
        content("ok", "length"),
        {"choices": [], "usage": {"prompt_tokens": 3.0, "completion_tokens": 1, "total_tokens": 4}},
    )
    assert (completion.answer, completion.finish_reason) == ("ok", "length")
    assert completion.usage == TokenUsage(3, 1, 4, None, None, source="api")


def test_no_usage_means_none() -> None:
    assert stream(content("ok", "stop")).usage is None


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ('"just text"', "stream chunk is not a JSON object"),
        ({"choices": {"0": {}}}, "choices is not a list"),
        ({"choices": ["x"]}, "choice is not a JSON object"),
        ({"choices": [{"delta": "x"}]}, "delta is not a JSON object"),
        ({"choices": [{"delta": {"content": 5}}]}, "delta.content is not text"),
        ({"choices": [], "usage": [1]}, "usage is not a JSON object"),
        ({"choices": [], "usage": {"total_tokens": "many"}}, "usage.total_tokens is not a whole"),
    ],
)
def test_a_chunk_of_the_wrong_shape_says_what_is_wrong(event: Any, message: str) -> None:
    with pytest.raises(MalformedChunkError, match=message):
        stream(content("partial"), event)


def test_an_error_event_raises_the_sdks_api_error() -> None:
    with pytest.raises(openai.APIError, match="overloaded"):
        stream(content("partial"), {"error": {"message": "overloaded", "type": "server_error"}})


def choice(index: int, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"id": "c-1", "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def test_a_stream_that_ends_without_finish_reason_or_done_is_incomplete() -> None:
    progress = Progress()
    with pytest.raises(IncompleteStreamError, match="16 characters of choice 0"):
        stream(content("Hello there,"), content(" and"), done=False, progress=progress)
    assert progress.responded is True
    assert progress.text == ["Hello there,", " and"]


def test_a_stream_that_finished_without_done_is_an_answer() -> None:
    completion = stream(content("Hello"), content(" there", "stop"), done=False)
    assert (completion.answer, completion.finish_reason, completion.finished) == (
        "Hello there",
        "stop",
        True,
    )
    assert completion.cacheable is True


def test_done_without_a_finish_reason_is_kept_but_not_cacheable() -> None:
    completion = stream(content("Hello"), content(" there"))
    assert (completion.answer, completion.finish_reason) == ("Hello there", None)
    assert (completion.finished, completion.cacheable) == (False, False)


def test_choices_are_kept_apart_by_index() -> None:
    completion = stream(
        choice(0, role="assistant", content=""),
        choice(1, role="assistant", content=""),
        choice(0, content="Par"),
        choice(1, content="It is "),
        choice(0, content="is"),
        choice(1, content="Paris"),
        choice(0, finish="length"),
        choice(1, finish="stop"),
        params={"n": 2},
    )
    assert [(c.index, c.text, c.finish_reason) for c in completion.choices] == [
        (0, "Paris", "length"),
        (1, "It is Paris", "stop"),
    ]
    assert completion.answer == "Paris"


def test_a_refusal_is_kept_apart_from_the_answer() -> None:
    completion = stream(
        choice(0, role="assistant", content=None, refusal=""),
        choice(0, content=None, refusal="I'm sorry, "),
        choice(0, content=None, refusal="I can't help with that."),
        choice(0, finish="stop"),
    )
    (only,) = completion.choices
    assert (only.text, only.refusal) == ("", "I'm sorry, I can't help with that.")
    error = only.error()
    assert error is not None and error.type == "Refusal"
    assert error.message == "the model refused: I'm sorry, I can't help with that."
    assert completion.cacheable is False


def test_a_content_filter_stop_is_not_an_answer() -> None:
    completion = stream(content("Here is how to"), content(None, "content_filter"))
    (only,) = completion.choices
    assert (only.text, only.finish_reason) == ("Here is how to", "content_filter")
    error = only.error()
    assert error is not None and error.type == "ContentFilter"
    assert completion.cacheable is False
