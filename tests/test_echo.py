"""Tests for the offline echo model, read through the openai SDK with strict validation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import (
    ResponseCodeInterpreterToolCall,
    ResponseCompletedEvent,
    ResponseFileSearchToolCall,
    ResponseFunctionToolCall,
    ResponseFunctionWebSearch,
    ResponseIncompleteEvent,
    ResponseOutputItemAddedEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)

from runner.wire.echo import ECHO_BASE_URL, EchoTransport, echo_transport

QUESTION = "what is the capital of France"
WORDS = ["what ", "is ", "the ", "capital ", "of ", "France"]
MESSAGES = [{"role": "user", "content": QUESTION}]
# o200k_base: the question is 6 tokens, "user" 1; a message costs 3 more, a reply 3 more.
INPUT_TOKENS = 13
STARTED = ["response.created", "response.in_progress"]
MESSAGE_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 6,
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
WEATHER_TOOL = {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}
CHAT_WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}
WEATHER_ARGS = '{"city":"what is the capital of France","days":1,"metric":true}'


@pytest.fixture
def transport() -> EchoTransport:
    return echo_transport()


@pytest.fixture
def client(transport: EchoTransport) -> Iterator[OpenAI]:
    http = httpx2.Client(transport=transport)
    with OpenAI(
        api_key="offline",
        base_url=ECHO_BASE_URL,
        max_retries=0,
        http_client=http,
        _strict_response_validation=True,
    ) as c:
        yield c


def _events(client: OpenAI, **kwargs: Any) -> list[ResponseStreamEvent]:
    kwargs.setdefault("model", "echo")
    kwargs.setdefault("input", QUESTION)
    with client.responses.create(stream=True, **kwargs) as stream:
        return list(stream)


def _types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def _texts(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["role"], i["content"][0]["text"]) for i in items]


def test_chat_completions_answer_as_before(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    with stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.model_dump(exclude_none=True) == {
        "role": "assistant",
        "content": "",
    }
    assert [c.choices[0].delta.content for c in chunks[1:-2]] == WORDS
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * 7 + ["stop"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (13, 6)
    assert chunks[0].id.startswith("chatcmpl-echo-") and len(chunks[0].id) == 30
    resp = client.chat.completions.create(model="echo", messages=MESSAGES, max_tokens=4)
    assert (resp.choices[0].message.content, resp.choices[0].finish_reason) == ("what is", "length")
    assert resp.system_fingerprint == "fp_echo_offline"


def test_responses_stream(client: OpenAI) -> None:
    events = _events(client)
    assert _types(events) == [*STARTED, *MESSAGE_EVENTS, "response.completed"]
    assert [e.sequence_number for e in events] == list(range(14))
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert [d.delta for d in deltas] == WORDS
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    response = completed.response
    assert (response.status, response.model, response.output_text) == (
        "completed",
        "echo",
        QUESTION,
    )
    assert response.id.startswith("resp_")
    assert {d.item_id for d in deltas} == {response.output[0].id}
    assert response.usage is not None
    assert response.usage.model_dump() == {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {
            "cached_tokens": 0,
            "cache_write_tokens": 0,
            "cache_write_tokens_details": None,
        },
        "output_tokens": 6,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + 6,
    }


def test_responses_wire_framing(transport: EchoTransport) -> None:
    with httpx2.Client(transport=transport) as raw:
        body = raw.post(
            f"{ECHO_BASE_URL}/responses", json={"model": "echo", "input": "hi", "stream": True}
        ).text
    frames = body.split("\n\n")
    assert frames[-1] == "" and "[DONE]" not in body
    for frame in frames[:-1]:
        event_line, data_line = frame.split("\n")
        assert json.loads(data_line.removeprefix("data: "))["type"] == event_line.removeprefix(
            "event: "
        )


def test_responses_without_streaming_and_retrieve(client: OpenAI) -> None:
    response = client.responses.create(model="echo", input=QUESTION, temperature=0.2)
    assert (response.status, response.output_text, response.temperature) == (
        "completed",
        QUESTION,
        0.2,
    )
    assert client.responses.retrieve(response.id).model_dump() == response.model_dump()
    # The same request gets the same id (the model is deterministic).
    assert client.responses.create(model="echo", input=QUESTION, temperature=0.2).id == response.id


def test_previous_response_id_continues(client: OpenAI, transport: EchoTransport) -> None:
    first = client.responses.create(model="echo", input="first question", instructions="be brief")
    second = client.responses.create(
        model="echo",
        input="second question",
        previous_response_id=first.id,
        instructions="be brief",
    )
    assert second.output_text == "second question"
    assert second.previous_response_id == first.id
    assert _texts(transport.context_of(second.id)) == [
        ("developer", "be brief"),
        ("user", "first question"),
        ("assistant", "first question"),
        ("user", "second question"),
    ]
    assert second.usage is not None
    assert second.usage.input_tokens == 27

    unstored = client.responses.create(model="echo", input="x", store=False)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="echo", input="y", previous_response_id=unstored.id)
    assert err.value.body == {
        "message": f"Previous response with id '{unstored.id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_state_belongs_to_its_transport(client: OpenAI) -> None:
    first = client.responses.create(model="echo", input="first question")
    with (
        OpenAI(
            api_key="offline",
            base_url=ECHO_BASE_URL,
            http_client=httpx2.Client(transport=echo_transport()),
            max_retries=0,
        ) as other,
        pytest.raises(openai.BadRequestError),
    ):
        other.responses.create(model="echo", input="more", previous_response_id=first.id)


@pytest.mark.parametrize(("param", "value"), [("seed", 1), ("stop", ["\n"]), ("n", 2)])
def test_unsupported_parameters_are_400(client: OpenAI, param: str, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="echo", input=QUESTION, extra_body={param: value})
    assert err.value.body == {
        "message": f"Unsupported parameter: '{param}'.",
        "type": "invalid_request_error",
        "param": param,
        "code": "unsupported_parameter",
    }


def test_malformed_requests_are_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="echo", input=QUESTION, extra_body={"text": "plain"})
    assert err.value.body == {
        "message": "Invalid type for 'text': expected an object, but got a string instead.",
        "type": "invalid_request_error",
        "param": "text",
        "code": "invalid_type",
    }
    with pytest.raises(openai.BadRequestError) as nested:  # a Chat Completions tool
        client.responses.create(model="echo", input=QUESTION, tools=[CHAT_WEATHER_TOOL])
    assert nested.value.body["message"] == "Missing required parameter: 'tools[0].name'."


def test_conversations(client: OpenAI, transport: EchoTransport) -> None:
    conversation = client.conversations.create(
        items=[{"role": "user", "content": "first question"}], metadata={"topic": "t"}
    )
    assert (conversation.object, conversation.metadata) == ("conversation", {"topic": "t"})
    response = client.responses.create(model="echo", input=QUESTION, conversation=conversation.id)
    assert response.conversation is not None and response.conversation.id == conversation.id
    assert _texts(transport.context_of(response.id)) == [
        ("user", "first question"),
        ("user", QUESTION),
    ]
    events = _events(client, input="again", conversation={"id": conversation.id})
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert events[-1].response.output_text == "again"
    items = list(client.conversations.items.list(conversation.id, order="asc"))
    assert [(i.role, i.content[0].text) for i in items] == [
        ("user", "first question"),
        ("user", QUESTION),
        ("assistant", QUESTION),
        ("user", "again"),
        ("assistant", "again"),
    ]
    assert len({i.id for i in items}) == 5
    newest = list(client.conversations.items.list(conversation.id, limit=2))
    assert [i.content[0].text for i in newest] == [
        "again",
        "again",
        QUESTION,
        QUESTION,
        "first question",
    ]
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="echo", input="x", conversation="conv_nope")
    assert err.value.body["message"] == "Conversation with id 'conv_nope' not found."


def test_function_tool_round_trip(client: OpenAI, transport: EchoTransport) -> None:
    events = _events(client, tools=[WEATHER_TOOL])
    assert _types(events) == [*STARTED, *CALL_EVENTS, "response.completed"]
    added = events[2]
    assert isinstance(added, ResponseOutputItemAddedEvent)
    assert (added.item.status, added.item.arguments) == ("in_progress", "")
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    (call,) = completed.response.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, call.arguments, call.status) == ("get_weather", WEATHER_ARGS, "completed")
    assert call.call_id.startswith("call_") and call.id is not None and call.id.startswith("fc_")
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == 18

    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    answer = client.responses.create(
        model="echo",
        input=[output],
        previous_response_id=completed.response.id,
        tools=[WEATHER_TOOL],
    )
    assert answer.output_text == f"{QUESTION} (tool get_weather said: sunny)"
    kept = client.responses.create(  # the client keeping the input itself
        model="echo",
        input=[*MESSAGES, call.model_dump(exclude_none=True), output],
        tools=[WEATHER_TOOL],
        store=False,
    )
    assert kept.output_text == answer.output_text
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="echo", input=[*MESSAGES, output], tools=[WEATHER_TOOL])
    assert err.value.body["message"] == (
        f"No tool call found for function call output with call_id {call.call_id}."
    )
    none = client.responses.create(
        model="echo", input=QUESTION, tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert none.output_text == QUESTION


def test_chat_tool_call_round_trip(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo",
        messages=MESSAGES,
        tools=[CHAT_WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        chunks: list[ChatCompletionChunk] = list(stream)
    opening = chunks[0].choices[0].delta
    assert opening.content is None and opening.tool_calls is not None
    assert opening.tool_calls[0].model_dump(exclude_none=True) == {
        "index": 0,
        "id": opening.tool_calls[0].id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    pieces = [
        c.choices[0].delta.tool_calls[0].function.arguments
        for c in chunks[1:3]
        if c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].function
    ]
    assert "".join(p or "" for p in pieces) == WEATHER_ARGS and len(pieces) == 2
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None, None, None, "tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 18

    resp = client.chat.completions.create(
        model="echo", messages=MESSAGES, tools=[CHAT_WEATHER_TOOL]
    )
    message = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    follow_up = [
        *MESSAGES,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    answer = client.chat.completions.create(
        model="echo", messages=follow_up, tools=[CHAT_WEATHER_TOOL]
    )
    assert answer.choices[0].message.content == f"{QUESTION} (tool get_weather said: sunny)"
    assert answer.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="echo", messages=follow_up[:2], tools=[CHAT_WEATHER_TOOL]
        )
    assert err.value.body["param"] == "messages.[1].role"


def test_builtin_tools(client: OpenAI) -> None:
    tools = [
        {"type": "web_search"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "code_interpreter", "container": {"type": "auto"}},
    ]
    events = _events(
        client, tools=tools, include=["file_search_call.results", "code_interpreter_call.outputs"]
    )
    assert _types(events) == [
        *STARTED,
        *["response.output_item.added", "response.output_item.done"] * 3,
        *MESSAGE_EVENTS[:8],
        "response.output_text.annotation.added",
        "response.output_text.annotation.added",
        *MESSAGE_EVENTS[8:],
        "response.completed",
    ]
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    search, files, code, message = completed.response.output
    assert isinstance(search, ResponseFunctionWebSearch)
    assert search.action.model_dump(exclude_none=True) == {"type": "search", "query": QUESTION}
    assert isinstance(files, ResponseFileSearchToolCall)
    assert files.queries == [QUESTION]
    assert files.results is not None and [r.text for r in files.results] == [QUESTION]
    assert isinstance(code, ResponseCodeInterpreterToolCall)
    assert code.code == f'print("{QUESTION}")'
    assert code.outputs is not None and [o.model_dump() for o in code.outputs] == [
        {"type": "logs", "logs": QUESTION}
    ]
    assert message.type == "message" and message.content[0].type == "output_text"
    assert [a.model_dump() for a in message.content[0].annotations] == [
        {
            "type": "url_citation",
            "url": "https://example.test/what-is-the-capital-of-france",
            "title": f"Search result for: {QUESTION}",
            "start_index": 0,
            "end_index": len(QUESTION),
        },
        {"type": "file_citation", "file_id": "file-echo0001", "filename": "notes.md", "index": 29},
    ]
    plain = client.responses.create(model="echo", input=QUESTION, tools=tools)  # include nothing
    files, code = plain.output[1], plain.output[2]
    assert isinstance(files, ResponseFileSearchToolCall) and files.results is None
    assert isinstance(code, ResponseCodeInterpreterToolCall) and code.outputs is None


def test_max_output_tokens_ends_incomplete(client: OpenAI) -> None:
    events = _events(client, max_output_tokens=4)  # two tokens a word
    assert _types(events)[-1] == "response.incomplete"
    assert [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)] == ["what ", "is"]
    last = events[-1]
    assert isinstance(last, ResponseIncompleteEvent)
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert (last.response.status, last.response.output_text) == ("incomplete", "what is")
    assert last.response.usage is not None and last.response.usage.output_tokens == 2


def test_json_schema_text_format(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer"},
            "capital": {"type": "boolean"},
            "size": {"type": "string", "enum": ["small", "large"]},
        },
        "required": ["city", "population", "capital", "size"],
        "additionalProperties": False,
    }
    text = {"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}}
    response = client.responses.create(model="echo", input=QUESTION, text=text)
    assert json.loads(response.output_text) == {
        "city": QUESTION,
        "population": 1,
        "capital": True,
        "size": "small",
    }


def test_async_client_streams_responses() -> None:
    async def run() -> list[str]:
        http = httpx2.AsyncClient(transport=echo_transport())
        async with AsyncOpenAI(
            api_key="offline", base_url=ECHO_BASE_URL, http_client=http, max_retries=0
        ) as c:

            async def one(i: int) -> str:
                stream = await c.responses.create(model="echo", input=f"question {i}", stream=True)
                async with stream:
                    return "".join(
                        [e.delta async for e in stream if e.type == "response.output_text.delta"]
                    )

            return await asyncio.gather(*(one(i) for i in range(5)))

    assert asyncio.run(run()) == [f"question {i}" for i in range(5)]


def test_responses_stream_helper_accumulates(client: OpenAI) -> None:
    """The SDK's stream helper checks each event against its snapshot of the response."""
    with client.responses.stream(model="echo", input=QUESTION, tools=[{"type": "web_search"}]) as s:
        texts = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert "".join(texts) == final.output_text == QUESTION
    assert [item.type for item in final.output] == ["web_search_call", "message"]
