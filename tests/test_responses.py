"""Assistant experiments: the Responses API, server-side conversation state, the tool loop on
both APIs, built-in tools and structured output, as records of a job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Job, records
from fake_openai import ANSWER_PREFIX, Behaviour, FakeOpenAIServer

from runner.base.errors import ConfigError

RESPONSES = "model.api=responses"
ONE = "questions.items=[{id: a, question: hello there}]"


def conversation_file(tmp_path: Path, turns: list[str], name: str = "chat.jsonl") -> Path:
    path = tmp_path / name
    item = {"id": "c1", "turns": [{"question": q} for q in turns]}
    path.write_text(json.dumps(item) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------- the Responses API


def test_a_responses_call_fills_the_same_record(job: Job, fake_server: FakeOpenAIServer) -> None:
    (row,) = job(RESPONSES, ONE, "sampling.max_tokens=50", "cache.enabled=false")
    (sent,) = fake_server.requests
    assert sent["input"] == [{"role": "user", "content": "hello there"}]
    assert sent["instructions"] == row["system_message"]
    assert sent["max_output_tokens"] == 50
    assert "messages" not in sent and "max_tokens" not in sent
    assert fake_server.path_counts["POST /v1/responses"] == 1
    assert row["api"] == "responses"
    assert row["answer"] == ANSWER_PREFIX + "hello there"
    assert row["finish_reason"] == "stop"
    assert row["response_id"].startswith("resp_")
    assert row["served_model"] == "gpt-4.1-mini"
    assert row["usage"]["prompt_tokens"] == sent_words(sent)
    assert row["usage"]["completion_tokens"] == len(row["answer"].split())
    assert row["usage"]["source"] == "api"
    assert row["cost_usd"] > 0 and row["ttft_s"] is not None and row["latency_s"] is not None
    assert row["state"] is None  # the runner sent the history (there was none)


def sent_words(body: dict) -> int:
    """The fake server's prompt count: 7 a message (instructions count as one) plus words."""
    messages = [body["instructions"]] + [m["content"] for m in body["input"]]
    return sum(7 + len(text.split()) for text in messages)


def test_reasoning_and_verbosity_go_where_the_responses_api_takes_them(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    job(
        RESPONSES,
        ONE,
        "model=gpt-6-luna",
        f"model.base_url={fake_server.base_url}",
        "sampling=reasoning",
        "sampling.seed=null",
        "sampling.verbosity=low",
    )
    (sent,) = fake_server.requests
    assert sent["reasoning"] == {"effort": "low"}
    assert sent["text"] == {"verbosity": "low"}
    assert sent["max_output_tokens"] == 2048


def test_a_param_the_responses_api_lacks_fails_before_any_call(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    with pytest.raises(ConfigError, match=r"sampling.seed=7 is not a Responses API parameter"):
        job(RESPONSES, "sampling.seed=7")
    assert fake_server.request_count == 0


@pytest.mark.parametrize(
    ("behaviour", "finish", "error"),
    [
        (Behaviour("incomplete"), "length", None),
        (Behaviour("incomplete", reason="content_filter"), "content_filter", "ContentFilter"),
        (Behaviour("refusal"), "stop", "Refusal"),
    ],
)
def test_how_a_response_ends_is_recorded(
    job: Job, fake_server: FakeOpenAIServer, behaviour: Behaviour, finish: str, error: str | None
) -> None:
    fake_server.enqueue(behaviour)
    (row,) = job(RESPONSES, ONE, "cache.enabled=false")
    assert row["finish_reason"] == finish
    assert (row["error"] or {}).get("type") == error
    assert row["attempts"] == 1


@pytest.mark.parametrize("kind", ["failed", "stream_error", "no_done", "cut", "500"])
def test_a_broken_response_is_retried(job: Job, fake_server: FakeOpenAIServer, kind: str) -> None:
    fake_server.enqueue(Behaviour(kind))
    (row,) = job(RESPONSES, ONE, "cache.enabled=false")
    assert row["error"] is None
    assert row["answer"] == ANSWER_PREFIX + "hello there"
    assert row["attempts"] == 2
    assert len(row["attempt_errors"]) == 1


def test_a_response_that_failed_on_every_attempt_says_so(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(*[Behaviour("failed")] * 3)
    (row,) = job(RESPONSES, ONE, "cache.enabled=false")
    assert row["error"]["type"] == "ResponseFailed"
    assert row["error"]["message"].startswith("response failed (server_error):")
    assert row["attempts"] == 3


def test_the_echo_model_speaks_both_apis_offline(job: Job) -> None:
    chat = job("questions=capitals", remote=False)
    job.dir = job.dir.parent / "responses"
    responses = job("questions=capitals", RESPONSES, remote=False)

    def answers(rows: list[dict]) -> dict[str, str]:
        return {r["conversation_id"]: r["answer"] for r in rows}

    assert answers(chat) == answers(responses)  # records come in the order calls finish
    assert {r["api"] for r in responses} == {"responses"}
    assert all(r["response_id"].startswith("resp_") for r in responses)


# ---------------------------------------------------------------------- conversation state


def test_previous_response_id_chains_each_turn_on_the_server(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    rows = job(
        RESPONSES,
        "conversation_state=previous_response_id",
        "questions=math_chat",
        "concurrency=1",
    )
    first, second = [r for r in rows if r["conversation_id"] == "times_then_add"]
    assert first["state"] == {
        "mode": "previous_response_id",
        "previous_response_id": None,
        "conversation": None,
    }
    assert second["state"]["previous_response_id"] == first["response_id"]
    sent = [
        r for r in fake_server.requests if r.get("previous_response_id") == first["response_id"]
    ]
    (body,) = sent
    assert body["input"] == [{"role": "user", "content": "Now add 16 to that."}]
    assert body["store"] is True
    seen = [item.get("content") for item in fake_server.context_of(second["response_id"])]
    assert "What is 12 times 7?" in str(seen) and first["answer"] in str(seen)
    assert second["messages"] == [
        {"role": "system", "content": second["system_message"]},
        {"role": "user", "content": "Now add 16 to that."},
    ]
    assert second["cache_hit"] is False


def test_a_server_side_conversation_per_question_set_conversation(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    rows = job(RESPONSES, "conversation_state=conversation", "questions=math_chat")
    assert fake_server.path_counts["POST /v1/conversations"] == 4  # one per conversation
    by_conversation: dict[str, set[str]] = {}
    for row in rows:
        by_conversation.setdefault(row["conversation_id"], set()).add(row["state"]["conversation"])
    assert all(len(ids) == 1 for ids in by_conversation.values())
    assert len({next(iter(ids)) for ids in by_conversation.values()}) == 4
    (three_turns,) = by_conversation["divide_square_subtract"]
    assert len(fake_server.conversation_items(three_turns)) == 6  # 3 questions, 3 answers


def test_resume_continues_a_server_side_conversation(
    job: Job, fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    path = conversation_file(tmp_path, ["first question"])
    args = (RESPONSES, "conversation_state=previous_response_id", "questions=trivia_file")
    (first,) = job(*args, f"questions.path={path}")
    conversation_file(tmp_path, ["first question", "second question"])
    rows = job(*args, f"questions.path={path}", "resume=true")
    assert [r["turn"] for r in rows] == [1, 2]
    assert rows[1]["state"]["previous_response_id"] == first["response_id"]
    assert rows[1]["error"] is None
    assert fake_server.requests[-1]["previous_response_id"] == first["response_id"]


def test_resume_after_the_server_forgot_says_why(
    job: Job, fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    path = conversation_file(tmp_path, ["first question"])
    args = (RESPONSES, "conversation_state=previous_response_id", "questions=trivia_file")
    job(*args, f"questions.path={path}")
    fake_server.reset()  # the server's stored responses are gone (they expire)
    conversation_file(tmp_path, ["first question", "second question"])
    rows = job(*args, f"questions.path={path}", "resume=true")
    assert rows[1]["error"]["type"] == "BadRequestError"
    assert (
        "no longer has the response this conversation continues from"
        in (rows[1]["error"]["message"])
    )


def test_server_side_state_needs_the_responses_api(job: Job) -> None:
    with pytest.raises(ConfigError, match=r"set model\.api=responses"):
        job("conversation_state=previous_response_id")


# ---------------------------------------------------------------------- the tool loop


@pytest.mark.parametrize(
    "api_args",
    [[], [RESPONSES], [RESPONSES, "conversation_state=previous_response_id"]],
    ids=["chat", "responses", "responses-server-state"],
)
def test_the_tool_loop_is_a_record_a_call(
    job: Job, fake_server: FakeOpenAIServer, api_args: list[str]
) -> None:
    rows = job(*api_args, "tools=weather", "questions=weather_tools", "cache.enabled=false")
    question = rows[0]["question"]
    mine = [r for r in rows if r["question"] == question]
    assert [r["step"] for r in mine] == [0, 1]
    call, answer = mine
    assert call["finish_reason"] == "tool_calls"
    (asked,) = call["tool_calls"]
    assert (asked["name"], asked["arguments"]) == ("get_weather", {"city": question})
    assert call["tool_results"] == [] and call["score"] is None
    (result,) = answer["tool_results"]
    assert result["output"] == f"{question}: 18°C and cloudy"
    assert result["error"] is None and result["id"] == asked["id"]
    assert answer["answer"] == (
        f"{ANSWER_PREFIX}{question} (tool get_weather said: {question}: 18°C and cloudy)"
    )
    assert answer["tool_calls"] == [] and answer["finish_reason"] == "stop"
    assert answer["score"] == 0.0  # the fake asked for the whole question, not "Paris"
    assert len({r["record_id"] for r in rows}) == len(rows) == 6
    assert fake_server.request_count == 6


def test_a_tool_that_raises_tells_the_model_and_the_record(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    _call, answer = job(
        "tools=calculator",
        "questions.items=[{id: a, question: two plus two}]",
        "cache.enabled=false",
    )
    (result,) = answer["tool_results"]
    assert result["error"].startswith("ValueError: ")
    assert result["output"] == "error: " + result["error"]
    assert answer["answer"].endswith(f"(tool calculate said: {result['output']})")
    assert answer["error"] is None


def test_too_many_rounds_of_tool_calls_end_the_turn(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("tool_twice"))
    rows = job("tools=weather", "tools.max_rounds=1", ONE, "cache.enabled=false")
    assert [r["step"] for r in rows] == [0, 1]
    assert rows[1]["error"]["type"] == "ToolRounds"
    assert rows[1]["tool_calls"][0]["name"] == "get_weather"  # asked for, not run
    assert fake_server.request_count == 2


def test_resume_reuses_a_finished_tool_turn(job: Job, fake_server: FakeOpenAIServer) -> None:
    first = job("tools=weather", ONE, "cache.enabled=false")
    again = job("tools=weather", ONE, "cache.enabled=false", "resume=true")
    assert again == first
    assert fake_server.request_count == 2


# ---------------------------------------------------------------------- built-in tools, formats


def test_built_in_tools_keep_their_output_items(job: Job, fake_server: FakeOpenAIServer) -> None:
    (row,) = job(RESPONSES, "tools=web", ONE, "cache.enabled=false")
    (sent,) = fake_server.requests
    assert sent["tools"] == [{"type": "web_search"}]
    kinds = [item["type"] for item in row["output_items"]]
    assert kinds == ["web_search_call", "message"]
    (annotation,) = row["output_items"][1]["content"][0]["annotations"]
    assert annotation["type"] == "url_citation"
    assert row["answer"] == ANSWER_PREFIX + "hello there"


def test_a_built_in_tool_the_model_rejects_fails_before_any_call(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    with pytest.raises(ConfigError, match="does not accept web_search tools"):
        job(RESPONSES, "tools=web", "model.tools=[function]")
    assert fake_server.request_count == 0


@pytest.mark.parametrize("api_args", [[], [RESPONSES]], ids=["chat", "responses"])
def test_structured_output_on_both_apis(
    job: Job, fake_server: FakeOpenAIServer, api_args: list[str]
) -> None:
    rows = job(*api_args, "questions=capitals_json", "response_format=capital_json")
    sent = fake_server.requests[0]
    if api_args:
        assert sent["text"]["format"]["type"] == "json_schema"
        assert sent["text"]["format"]["name"] == "capital"
    else:
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["strict"] is True
    for row in rows:
        answer = json.loads(row["answer"])
        assert set(answer) == {"capital", "country"}
        assert row["score"] == 0.0  # valid JSON matching the schema, but not the capital


def test_records_load_with_tool_calls_countable(job: Job, fake_server: FakeOpenAIServer) -> None:
    from runner import load_results

    job("tools=weather", "questions=weather_tools", "cache.enabled=false")
    df = load_results(job.dir)
    assert int(df["tool_calls"].map(len).sum()) == 3
    assert df.groupby("step").size().to_dict() == {0: 3, 1: 3}
    assert records(job.dir)[0]["tools"] == "weather"


@pytest.mark.parametrize("api_args", [[], [RESPONSES]], ids=["chat", "responses"])
def test_tool_use_and_json_answers_are_scored(
    job: Job, fake_server: FakeOpenAIServer, api_args: list[str]
) -> None:
    call = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    tool_rows = job(
        *api_args,
        "tools=weather",
        f"questions.items=[{{id: w, question: Paris, expected: '{call}', scorer: tool_call}}]",
    )
    assert [r["score"] for r in tool_rows] == [None, 1.0]
    job.dir = job.dir.parent / "json"
    json_rows = job(
        *api_args,
        "response_format=capital_json",
        'questions.items=[{id: c, question: Paris, expected: \'{"capital": "Paris"}\', '
        'scorer: json}, {id: d, question: Rome, expected: \'{"capital": "Paris"}\', '
        "scorer: json}]",
    )
    json_rows.sort(key=lambda r: r["conversation_id"])  # conversations finish in any order
    assert [(r["answer"], r["score"]) for r in json_rows] == [
        ('{"capital": "Paris", "country": "Paris"}', 1.0),
        ('{"capital": "Rome", "country": "Rome"}', 0.0),
    ]
