"""A job's records against the fake server and the echo model: choices, refusals, resume by
content, money, and a failure in one conversation that must not cost the others."""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import Job, records
from fake_openai import ANSWER_PREFIX, Behaviour, FakeOpenAIServer

import runner.base.transcript as transcript_module
import runner.core.recorder as recorder_module
import runner.core.turn as turn_module
from runner.base.errors import ConfigError
from runner.base.record import TokenUsage
from runner.cli.experiment import compose, run_job
from runner.core.costs import cost_usd
from runner.core.job import TranscriptWriteError
from runner.core.validation import validate
from runner.wire.tokens import get_counter

CAPITALS = {
    "france": "What is the capital of France?",
    "japan": "What is the capital of Japan?",
    "canada": "What is the capital of Canada?",
    "australia": "What is the capital of Australia?",
    "egypt": "What is the capital of Egypt?",
}


# ---------------------------------------------------------------------- n > 1


def test_each_of_n_choices_is_its_own_record(job: Job, fake_server: FakeOpenAIServer) -> None:
    rows = job("sampling.n=3", "cache.enabled=false")
    assert fake_server.request_count == 5
    assert [r["n"] for r in fake_server.requests] == [3] * 5
    assert len(rows) == 15
    for conversation, question in CAPITALS.items():
        mine = [r for r in rows if r["conversation_id"] == conversation]
        assert [r["choice"] for r in mine] == [0, 1, 2]
        answer = ANSWER_PREFIX + question
        suffixed = [answer + f" (choice {i})" for i in (1, 2)]
        assert [r["answer"] for r in mine] == [answer, *suffixed]
        assert len({r["record_id"] for r in mine}) == 3
        # the call's usage is shared: each figure sums to what the server reported for the call
        words = [len(r["answer"].split()) for r in mine]
        assert sum(r["usage"]["completion_tokens"] for r in mine) == sum(words)
        prompt = mine[0]["usage"]["prompt_tokens"]
        system_words = len(mine[0]["system_message"].split())
        assert prompt == 7 + system_words + 7 + len(question.split())  # 7 a message + its words
        assert [r["usage"]["prompt_tokens"] for r in mine] == [prompt, 0, 0]
        assert {r["usage"]["source"] for r in mine} == {"api_split"}
        prices = validate(compose(["model=gpt-4.1-mini"])).model.prices
        call_cost = (prompt * prices.input + sum(words) * prices.output) / 1_000_000
        assert sum(r["cost_usd"] for r in mine) == pytest.approx(call_cost, rel=1e-9)


def test_choices_offline_on_the_echo_model(job: Job) -> None:
    rows = job("sampling.n=2", remote=False)
    assert len(rows) == 10
    assert [r["choice"] for r in rows[:2]] == [0, 1]
    assert rows[0]["answer"] == rows[1]["answer"] == CAPITALS["france"]


def test_a_server_that_ignores_n_gives_error_records_for_the_missing_choices(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.ignore_n = True  # as Ollama does: one answer whatever n says
    rows = job("questions.items=[{id: a, question: hello}]", "sampling.n=2")
    assert [r["choice"] for r in rows] == [0, 1]
    assert rows[0]["error"] is None
    assert rows[0]["answer"] == ANSWER_PREFIX + "hello"
    assert rows[1]["error"]["type"] == "MissingChoice"
    assert rows[1]["answer"] is None


# ---------------------------------------------------------------------- what real servers send


def test_a_stream_closed_without_done_or_finish_is_retried(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("no_done"))
    rows = job("questions.items=[{id: a, question: hello there}]")
    (row,) = rows
    assert row["error"] is None
    assert row["answer"] == ANSWER_PREFIX + "hello there"
    assert row["attempts"] == 2
    assert row["attempt_errors"] == [
        {"attempt": 1, "type": "StreamError", "status": None, "charged": True}
    ]
    # the first attempt streamed its whole text before the connection closed: billed
    counter = get_counter("o200k_base")
    assert row["retried_usage"] == {
        "prompt_tokens": row["estimated_prompt_tokens"],
        "completion_tokens": counter.count_text(ANSWER_PREFIX + "hello there"),
        "total_tokens": row["estimated_prompt_tokens"]
        + counter.count_text(ANSWER_PREFIX + "hello there"),
        "cached_tokens": None,
        "reasoning_tokens": None,
        "source": "estimate",
    }
    prices = validate(compose(["model=gpt-4.1-mini"])).model.prices
    retry_cost = cost_usd(TokenUsage(**row["retried_usage"]), prices)
    answer_cost = cost_usd(TokenUsage(**row["usage"]), prices)
    assert retry_cost is not None and answer_cost is not None
    assert row["cost_usd"] == pytest.approx(answer_cost + retry_cost, rel=1e-9)


def test_an_incomplete_stream_is_never_cached(job: Job, fake_server: FakeOpenAIServer) -> None:
    fake_server.enqueue(*[Behaviour("no_done")] * 3)  # every attempt breaks off
    (row,) = job("questions.items=[{id: a, question: hello}]")
    assert row["error"]["type"] == "StreamError"
    assert row["answer"] is None
    assert [a["charged"] for a in row["attempt_errors"]] == [True, True, True]
    job.dir = job.dir.parent / "again"
    (again,) = job("questions.items=[{id: a, question: hello}]")
    assert again["cache_hit"] is False
    assert again["error"] is None
    assert fake_server.request_count == 4


def test_a_refusal_is_recorded_as_one_and_not_cached(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("refusal"))
    (row,) = job("questions.items=[{id: a, question: how do I pick a lock}]")
    assert row["answer"] is None
    assert row["refusal"] == "I'm sorry, but I can't help with that."
    assert row["finish_reason"] == "stop"
    assert row["error"]["type"] == "Refusal"
    assert row["score"] is None
    assert row["usage"]["completion_tokens"] == 8
    job.dir = job.dir.parent / "again"
    (again,) = job("questions.items=[{id: a, question: how do I pick a lock}]")
    assert (again["cache_hit"], again["refusal"], again["error"]) == (False, None, None)


def test_a_content_filter_stop_is_recorded_and_not_cached(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("content_filter"))
    (row,) = job("questions.items=[{id: a, question: one two three four five six}]")
    assert row["finish_reason"] == "content_filter"
    assert row["error"]["type"] == "ContentFilter"
    assert row["answer"] == "fake answer to: "  # what came before the filter, kept
    job.dir = job.dir.parent / "again"
    (again,) = job("questions.items=[{id: a, question: one two three four five six}]")
    assert (again["cache_hit"], again["finish_reason"], again["error"]) == (False, "stop", None)


def test_length_stays_an_answer(job: Job) -> None:
    (row,) = job("questions.items=[{id: a, question: one two three}]", "sampling.max_tokens=3")
    assert (row["answer"], row["finish_reason"]) == ("fake answer to:", "length")
    assert row["error"] is None


def test_a_quota_error_is_not_retried(job: Job, fake_server: FakeOpenAIServer) -> None:
    fake_server.enqueue(Behaviour("quota"))
    (row,) = job("questions.items=[{id: a, question: hello}]")
    assert fake_server.request_count == 1
    assert row["attempts"] == 1
    assert row["error"]["type"] == "InsufficientQuota"
    assert row["error"]["status"] == 429
    assert row["cost_usd"] == 0.0  # refused with an error status: nothing billed


# ---------------------------------------------------------------------- money


def test_a_cache_hit_costs_nothing_and_keeps_the_original_cost(job: Job) -> None:
    first = job()
    job.dir = job.dir.parent / "again"
    second = job()
    assert job.server.request_count == 5
    for before, after in zip(first, second, strict=True):
        assert (before["cache_hit"], after["cache_hit"]) == (False, True)
        assert before["cost_usd"] > 0
        assert after["cost_usd"] == 0.0
        assert after["cached_cost_usd"] == before["cost_usd"]
        assert before["cached_cost_usd"] is None


# ---------------------------------------------------------------------- resume by content


def write_questions(path: Path, questions: list[str]) -> None:
    lines = [json.dumps({"question": q, "expected": q.split()[-1]}) for q in questions]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_resume_asks_exactly_the_new_and_changed_items(
    job: Job, fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    qfile = tmp_path / "questions.jsonl"
    write_questions(qfile, ["alpha one", "bravo two", "charlie three", "delta four"])
    args = ("questions=trivia_file", f"questions.path={qfile}", "cache.enabled=false")
    first = job(*args)
    assert fake_server.request_count == 4
    # insert one at the top, edit one, remove one: ids without an "id" must not shift
    write_questions(qfile, ["zulu zero", "alpha one", "bravo TWO", "delta four"])
    rows = job(*args, "resume=true")
    asked = [r["messages"][-1]["content"] for r in fake_server.requests[4:]]
    assert sorted(asked) == ["bravo TWO", "zulu zero"]
    assert len(rows) == 4
    for row in rows:  # every answer belongs to its own question
        assert row["answer"] == ANSWER_PREFIX + row["question"]
    kept = {r["question"]: r["record_id"] for r in first}
    assert {r["question"]: r["record_id"] for r in rows}["alpha one"] == kept["alpha one"]
    aside = records(job.dir, "superseded.jsonl")
    assert sorted(r["question"] for r in aside) == ["bravo two", "charlie three"]


def test_resume_after_the_endpoint_changed_refuses(job: Job, fake_server: FakeOpenAIServer) -> None:
    job("cache.enabled=false")
    other = FakeOpenAIServer().start()
    try:
        with pytest.raises(ConfigError, match=r"was written against base_url http://127\.0\.0\.1:"):
            run_job(
                ["model=gpt-4.1-mini", f"model.base_url={other.base_url}", "resume=true"],
                job.dir,
            )
        assert other.request_count == 0
    finally:
        other.stop()
    assert len(records(job.dir)) == 5


def test_resume_refuses_a_transcript_with_a_corrupt_middle_line(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    job("cache.enabled=false")
    path = job.dir / "transcript.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = '{"record_id": "cut here\n'
    path.write_text("".join(lines), encoding="utf-8")
    message = rf"{re.escape(str(path))}, line 2: not a JSON record .*: resume cannot trust"
    with pytest.raises(ConfigError, match=message):
        job("cache.enabled=false", "resume=true")
    assert fake_server.request_count == 5  # nothing asked again
    assert path.read_text(encoding="utf-8") == "".join(lines)  # nor rewritten


def test_resume_with_another_config_refuses(job: Job, fake_server: FakeOpenAIServer) -> None:
    job("cache.enabled=false")
    with pytest.raises(ConfigError, match=r"another config \(params was \{\}, now \{'seed': 9\}\)"):
        job("cache.enabled=false", "resume=true", "sampling.seed=9")
    assert fake_server.request_count == 5


# ---------------------------------------------------------------------- failures in one place


def test_a_scorer_bug_keeps_the_paid_answer_and_the_other_conversations(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = recorder_module.score_answer

    def flaky(answer: str | None, expected: str | None, *args: Any, **kwargs: Any) -> Any:
        if expected == "Ottawa":
            raise ZeroDivisionError("scorer bug")
        return real(answer, expected, *args, **kwargs)

    monkeypatch.setattr(recorder_module, "score_answer", flaky)
    rows = job()
    assert len(rows) == 5
    (canada,) = [r for r in rows if r["conversation_id"] == "canada"]
    assert canada["answer"] == ANSWER_PREFIX + CAPITALS["canada"]
    assert canada["error"] == {
        "type": "ScorerError",
        "message": "ZeroDivisionError: scorer bug",
        "status": None,
    }
    assert canada["usage"]["completion_tokens"] == len(canada["answer"].split())
    assert all(r["error"] is None and r["score"] == 0.0 for r in rows if r is not canada)


def test_an_unexpected_error_in_one_conversation_is_its_error_record(
    job: Job, monkeypatch: pytest.MonkeyPatch, fake_server: FakeOpenAIServer
) -> None:
    real = turn_module.build_prompt

    def broken(system: str | None, history: Any, question: str, *args: Any) -> Any:
        if "Japan" in question:
            raise RuntimeError("cache timed out")
        return real(system, history, question, *args)

    monkeypatch.setattr(turn_module, "build_prompt", broken)
    rows = job()
    assert len(rows) == 5
    (japan,) = [r for r in rows if r["conversation_id"] == "japan"]
    assert japan["error"] == {
        "type": "InternalError",
        "message": "RuntimeError: cache timed out",
        "status": None,
    }
    assert [r["error"] for r in rows if r is not japan] == [None] * 4
    assert fake_server.request_count == 4


def test_a_full_disk_stops_the_job_and_resume_finishes_it(
    job: Job, monkeypatch: pytest.MonkeyPatch, fake_server: FakeOpenAIServer
) -> None:
    real = transcript_module.TranscriptWriter.write_many
    written = []

    def write_many(self: Any, records: Any) -> None:
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.extend(records)
        real(self, records)

    monkeypatch.setattr(transcript_module.TranscriptWriter, "write_many", write_many)
    with pytest.raises(TranscriptWriteError, match=r"No space left on device.*resume=true"):
        job("concurrency=1", "cache.enabled=false")
    assert len(records(job.dir)) == 2
    monkeypatch.setattr(transcript_module.TranscriptWriter, "write_many", real)
    rows = job("concurrency=1", "cache.enabled=false", "resume=true")
    assert sorted(r["conversation_id"] for r in rows) == sorted(CAPITALS)
    assert len({r["record_id"] for r in rows}) == 5


def test_a_failed_turn_skips_the_rest_of_its_conversation(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("refusal"))
    rows = job("questions=math_chat", "cache.enabled=false", "concurrency=1")
    first = [r for r in rows if r["conversation_id"] == "times_then_add"]
    assert [r["error"]["type"] for r in first] == ["Refusal", "Skipped"]
    assert first[1]["error"]["message"] == "not asked: turn 1 of this conversation failed"
    assert fake_server.request_count == 7  # 8 turns less the one skipped


def test_resume_failed_asks_the_failed_turns_again_and_keeps_the_answers(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    args = ("questions=math_chat", "cache.enabled=false", "concurrency=1", "retry.max_attempts=1")
    # times_then_add: turn 2 fails; divide_square_subtract: turn 1 fails (2 and 3 skipped);
    # add_then_triple: turn 1 is refused (an answer: kept); nine_squared answers
    fake_server.enqueue("ok", "500", "500", Behaviour("refusal"))
    first = job(*args)
    assert fake_server.request_count == 5
    kinds = {(r["conversation_id"], r["turn"]): (r["error"] or {}).get("type") for r in first}
    assert kinds == {
        ("times_then_add", 1): None,
        ("times_then_add", 2): "InternalServerError",
        ("divide_square_subtract", 1): "InternalServerError",
        ("divide_square_subtract", 2): "Skipped",
        ("divide_square_subtract", 3): "Skipped",
        ("add_then_triple", 1): "Refusal",
        ("add_then_triple", 2): "Skipped",
        ("nine_squared", 1): None,
    }
    assert job(*args, "resume=true") == first  # a plain resume keeps the failures
    assert fake_server.request_count == 5
    rows = job(*args, "resume=true", "resume_failed=true")
    asked = [r["messages"][-1]["content"] for r in fake_server.requests[5:]]
    assert asked == [
        "Now add 16 to that.",
        "What is 144 divided by 12?",
        "Square that number.",
        "Subtract 44 from the result.",
    ]
    # the answer recorded for turn 1 is the history turn 2 is asked with
    assert fake_server.requests[5]["messages"][-2]["content"] == first[0]["answer"]
    assert len(rows) == 8 and len({r["record_id"] for r in rows}) == 8
    again = {(r["conversation_id"], r["turn"]): (r["error"] or {}).get("type") for r in rows}
    answered = [("times_then_add", 2), *(("divide_square_subtract", t) for t in (1, 2, 3))]
    assert again == {**kinds, **dict.fromkeys(answered)}
    aside = records(job.dir, "superseded.jsonl")
    assert sorted((r["conversation_id"], r["turn"]) for r in aside) == [
        ("divide_square_subtract", 1),
        ("divide_square_subtract", 2),
        ("divide_square_subtract", 3),
        ("times_then_add", 2),
    ]
    assert job(*args, "resume=true", "resume_failed=true") == rows  # nothing left to ask
    assert fake_server.request_count == 9


def test_resume_failed_asks_a_tool_turn_whole(job: Job, fake_server: FakeOpenAIServer) -> None:
    """A turn whose tool call went through but whose next call failed is asked from its
    first call: no record of it is written twice."""
    args = (
        "tools=weather",
        "questions.items=[{id: paris, question: Is it raining in Paris?}]",
        "cache.enabled=false",
        "retry.max_attempts=1",
    )
    fake_server.enqueue("ok", "500")
    first = job(*args)
    assert [(r["step"], (r["error"] or {}).get("type")) for r in first] == [
        (0, None),
        (1, "InternalServerError"),
    ]
    rows = job(*args, "resume=true", "resume_failed=true")
    assert fake_server.request_count == 4
    assert [(r["step"], r["error"]) for r in rows] == [(0, None), (1, None)]
    assert len({r["record_id"] for r in rows}) == 2
    assert records(job.dir, "superseded.jsonl") == first


# ---------------------------------------------------------------------- repeated samples


def test_repeat_asks_every_conversation_again_and_never_from_its_own_cache(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    rows = job("repeat=3", "questions=math_chat")
    assert fake_server.request_count == 24  # 8 turns, 3 times: no sample is another's cache hit
    assert sorted({r["sample"] for r in rows}) == [0, 1, 2]
    assert len({r["record_id"] for r in rows}) == 24
    for sample in range(3):
        turns = [r["turn"] for r in rows if r["sample"] == sample]
        assert sorted(turns) == [1, 1, 1, 1, 2, 2, 2, 3]
    job.dir = job.dir.parent / "again"
    again = job("repeat=3", "questions=math_chat")
    assert fake_server.request_count == 24  # ...but each sample is its own cache hit later
    assert all(r["cache_hit"] for r in again)


def test_raising_repeat_on_resume_asks_only_the_new_samples(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    job("repeat=2", "cache.enabled=false")
    rows = job("repeat=3", "cache.enabled=false", "resume=true")
    assert fake_server.request_count == 15
    assert sorted(r["sample"] for r in rows) == [0] * 5 + [1] * 5 + [2] * 5
