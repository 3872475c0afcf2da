"""batch=true: a job's calls through the Batch API against the fake server. The records are the
ones a streamed job writes, at batch prices; conversations go in rounds; a killed wait, a
failed or expired batch and an input past the limits all end with every planned record."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY, Cli, Job, cli_env, fake_model, records
from fake_openai import ANSWER_PREFIX, Behaviour, FakeOpenAIServer
from openai import OpenAI

import runner.core.batch as batch_module
from runner.base.errors import ConfigError
from runner.base.record import TokenUsage
from runner.base.schema import Prices
from runner.cli.experiment import compose
from runner.core.costs import batch_prices, cost_usd
from runner.core.executor import Executor
from runner.core.job import TranscriptWriteError
from runner.core.plan import JobInfo, plan_job
from runner.core.validation import validate
from runner.wire.chat_completions import parse_chat_completion
from runner.wire.completion import MalformedChunkError

BATCH = ("batch=true", "batch_poll_s=0.01", "cache.enabled=false")
# What differs between a streamed record and a batch one for the same call.
TIMING = {"created_at", "latency_s", "ttft_s", "batch_id", "cost_usd", "response_id"}


def input_lines(server: FakeOpenAIServer, batch: dict[str, Any]) -> list[dict[str, Any]]:
    text = server.file_content(batch["input_file_id"]).decode()
    return [json.loads(line) for line in text.splitlines()]


def state(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "batch.json").read_text(encoding="utf-8"))


def unstreamed(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


# ---------------------------------------------------------------------- the same records


@pytest.mark.parametrize(
    ("api", "choices"),
    [("chat", 1), ("responses", 1), ("chat", 2)],
    ids=["chat", "responses", "n=2"],
)
def test_a_batch_writes_the_records_a_streamed_job_writes(
    job: Job, fake_server: FakeOpenAIServer, api: str, choices: int
) -> None:
    extra = [f"model.api={api}"] + ([f"sampling.n={choices}"] if choices > 1 else [])
    streamed = job(*extra, "cache.enabled=false")
    sent = {json.dumps(unstreamed(b), sort_keys=True) for b in fake_server.requests}
    fake_server.reset()
    job.dir = job.dir.parent / "batch"
    rows = job(*extra, *BATCH)
    path = "/v1/responses" if api == "responses" else "/v1/chat/completions"
    assert fake_server.path_counts[f"POST {path}"] == 0  # nothing streamed
    assert fake_server.path_counts["POST /v1/batches"] == 1
    (made,) = fake_server.batches_made()
    assert (made["endpoint"], made["completion_window"], made["status"]) == (
        path,
        "24h",
        "completed",
    )
    lines = input_lines(fake_server, made)
    # each line: the record's id, and exactly the body a streamed call sent, less streaming
    assert [(x["method"], x["url"]) for x in lines] == [("POST", path)] * 5
    assert sorted(x["custom_id"] for x in lines) == sorted(
        r["record_id"] for r in rows if r["choice"] == 0
    )
    assert {json.dumps(x["body"], sort_keys=True) for x in lines} == sent
    assert len(rows) == len(streamed) == 5 * choices
    by_id = {r["record_id"]: r for r in streamed}
    prices = validate(compose(["model=gpt-4.1-mini"])).model.prices
    for row in rows:
        twin = by_id[row["record_id"]]
        assert row.keys() == twin.keys()
        assert {k: v for k, v in row.items() if k not in TIMING} == {
            k: v for k, v in twin.items() if k not in TIMING
        }
        assert row["answer"].startswith(ANSWER_PREFIX + row["question"])
        assert (row["batch_id"], twin["batch_id"]) == ("batch_fake1", None)
        assert (row["latency_s"], row["ttft_s"]) == (None, None)
        usage = row["usage"]
        half = (usage["prompt_tokens"] * 0.2 + usage["completion_tokens"] * 0.8) / 1e6
        assert (prices.input_batch, prices.output_batch) == (0.2, 0.8)
        assert row["cost_usd"] == pytest.approx(half, rel=1e-9)
        assert row["cost_usd"] == pytest.approx(twin["cost_usd"] / 2, rel=1e-9)


def test_a_batch_answer_is_cached_like_a_streamed_one(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    first = job("batch=true", "batch_poll_s=0.01")
    job.dir = job.dir.parent / "streamed"
    again = job()
    assert fake_server.path_counts["POST /v1/chat/completions"] == 0
    assert [r["cache_hit"] for r in again] == [True] * 5
    # a cache hit's cached_cost_usd is what the call costs at the prices of the run reading it
    assert [r["cached_cost_usd"] for r in again] == pytest.approx(
        [2 * r["cost_usd"] for r in first]
    )
    job.dir = job.dir.parent / "batch-again"
    hits = job("batch=true", "batch_poll_s=0.01")
    assert fake_server.path_counts["POST /v1/batches"] == 1  # no second batch: all hits
    assert [(r["cache_hit"], r["batch_id"], r["cost_usd"]) for r in hits] == [(True, None, 0.0)] * 5


def test_without_batch_prices_the_cost_is_unknown(job: Job) -> None:
    rows = job(*BATCH, "model.prices.input_batch=null")
    assert [r["cost_usd"] for r in rows] == [None] * 5
    assert all(r["usage"]["prompt_tokens"] > 0 for r in rows)


def test_batch_prices_halve_the_cached_price() -> None:
    prices = Prices(input=0.4, cached_input=0.1, output=1.6, input_batch=0.2, output_batch=0.8)
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    # 600 fresh at 0.2, 400 cached at 0.05, 100 out at 0.8
    assert cost_usd(usage, batch_prices(prices)) == pytest.approx(220e-6, rel=1e-12)
    assert cost_usd(usage, batch_prices(Prices(input=0.4, output=1.6))) is None


def test_a_chat_completion_object_is_read_whole() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4.1-mini-2025",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            },
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "No."},
                "finish_reason": "stop",
            },
        ],
        "usage": {
            "prompt_tokens": 20,
            "completion_tokens": 9,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 8},
            "completion_tokens_details": {"reasoning_tokens": 4},
        },
    }
    completion = parse_chat_completion(body)
    first, second = completion.choices
    assert (first.index, first.text, first.refusal, first.finish_reason) == (0, "", "No.", "stop")
    assert (second.index, second.finish_reason) == (1, "tool_calls")
    assert [(c.id, c.name, c.arguments) for c in second.tool_calls] == [
        ("call_1", "get_weather", '{"city":"Oslo"}')
    ]
    assert completion.usage == TokenUsage(20, 9, 29, 8, 4, "api")
    assert (completion.response_id, completion.served_model) == ("chatcmpl-1", "gpt-4.1-mini-2025")
    assert (completion.system_fingerprint, completion.ttft_s, completion.finished) == (
        "fp_1",
        None,
        True,
    )
    with pytest.raises(MalformedChunkError, match="choices is not a list"):
        parse_chat_completion({"choices": "no"})


# ---------------------------------------------------------------------- errors per request


def test_a_failed_line_and_an_error_status_are_error_records(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("400_context"))  # the first line answered: a 400
    fake_server.batch_fail_lines = {3}  # an error line without a response
    rows = job(*BATCH, "concurrency=1")
    assert [r["conversation_id"] for r in rows] == [
        "france",
        "japan",
        "canada",
        "australia",
        "egypt",
    ]
    refused, fine, failed = rows[0], rows[1], rows[2]
    assert refused["error"]["type"] == "BadRequestError"
    assert refused["error"]["status"] == 400
    assert refused["error"]["message"].startswith(
        "Error code: 400 - This model's maximum context length is 128000 tokens."
    )
    assert refused["attempt_errors"] == [
        {"attempt": 1, "type": "BadRequestError", "status": 400, "charged": False}
    ]
    assert failed["error"] == {
        "type": "BatchRequestFailed",
        "message": "server_error: The server had an error while processing this request.",
        "status": None,
    }
    for row in (refused, failed):
        assert (row["answer"], row["cost_usd"], row["batch_id"]) == (None, 0.0, "batch_fake1")
    assert fine["error"] is None and fine["answer"] == ANSWER_PREFIX + fine["question"]
    assert [r["error"] for r in rows[3:]] == [None, None]
    # the same 400 streamed gives the same error
    fake_server.reset()
    fake_server.enqueue(Behaviour("400_context"))
    job.dir = job.dir.parent / "streamed"
    streamed = job("cache.enabled=false", "concurrency=1")
    assert streamed[0]["error"] == refused["error"]


def test_a_failed_response_is_not_retried_in_a_batch(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("failed"))  # a 200 whose response has status "failed"
    rows = job(*BATCH, "model.api=responses", "concurrency=1")
    failed = rows[0]
    assert failed["error"] == {
        "type": "ResponseFailed",
        "message": "response failed (server_error): The model failed to generate a response.",
        "status": None,
    }
    assert failed["attempt_errors"] == [
        {"attempt": 1, "type": "ResponseFailed", "status": None, "charged": True}
    ]
    billed = failed["retried_usage"]
    assert (billed["completion_tokens"], billed["source"]) == (0, "estimate")
    # the prompt was billed: France's question has as many words as Japan's
    assert billed["prompt_tokens"] == rows[1]["usage"]["prompt_tokens"]
    assert failed["cost_usd"] == pytest.approx(billed["prompt_tokens"] * 0.2 / 1e6, rel=1e-9)
    assert [r["error"] for r in rows[1:]] == [None] * 4


def test_a_refusal_in_a_batch_skips_the_later_turns(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("refusal"))  # the first line of round 1: times_then_add
    rows = job(*BATCH, "questions=math_chat")
    first = [r for r in rows if r["conversation_id"] == "times_then_add"]
    assert [r["error"]["type"] for r in first] == ["Refusal", "Skipped"]
    assert first[0]["refusal"] == "I'm sorry, but I can't help with that."
    made = fake_server.batches_made()
    assert [len(input_lines(fake_server, b)) for b in made] == [4, 2, 1]


# ---------------------------------------------------------------------- rounds


def test_each_turn_goes_in_a_round_after_the_answers_before_it(
    job: Job, fake_server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_server.batch_polls = 1
    with caplog.at_level(logging.INFO, logger="runner.core.batch"):
        rows = job(*BATCH, "questions=math_chat")
    polls = [m.partition(": ")[2] for m in caplog.messages if "requests answered" in m]
    assert polls == [
        "batch batch_fake1 (round 1): in_progress, 0 of 4 requests answered, 0 failed",
        "batch batch_fake1 (round 1): completed, 4 of 4 requests answered, 0 failed",
        "batch batch_fake2 (round 2): in_progress, 0 of 3 requests answered, 0 failed",
        "batch batch_fake2 (round 2): completed, 3 of 3 requests answered, 0 failed",
        "batch batch_fake3 (round 3): in_progress, 0 of 1 requests answered, 0 failed",
        "batch batch_fake3 (round 3): completed, 1 of 1 requests answered, 0 failed",
    ]
    made = fake_server.batches_made()
    assert [len(input_lines(fake_server, b)) for b in made] == [4, 3, 1]
    assert len(rows) == 8 and all(r["error"] is None for r in rows)
    assert {r["turn"]: r["batch_id"] for r in rows} == {
        1: "batch_fake1",
        2: "batch_fake2",
        3: "batch_fake3",
    }
    # round 3 sends turn 3 of divide_square_subtract with the answers of rounds 1 and 2
    (last,) = input_lines(fake_server, made[2])
    said = [m["content"] for m in last["body"]["messages"] if m["role"] == "assistant"]
    assert said == [
        ANSWER_PREFIX + "What is 144 divided by 12?",
        ANSWER_PREFIX + "Square that number.",
    ]
    assert [r["batch_id"] for r in rows] == ["batch_fake1"] * 4 + ["batch_fake2"] * 3 + [
        "batch_fake3"
    ]
    saved = state(job.dir)["batches"]
    assert [(b["id"], b["round"], b["status"], b["collected"]) for b in saved] == [
        ("batch_fake1", 1, "completed", True),
        ("batch_fake2", 2, "completed", True),
        ("batch_fake3", 3, "completed", True),
    ]
    assert [sorted(b["record_ids"]) for b in saved] == [
        sorted(r["record_id"] for r in rows if r["turn"] == turn) for turn in (1, 2, 3)
    ]


def test_a_tool_round_is_one_more_round(job: Job, fake_server: FakeOpenAIServer) -> None:
    tools = ("tools=weather", "questions=weather_tools")
    streamed = job(*tools, "cache.enabled=false")
    fake_server.reset()
    job.dir = job.dir.parent / "batch"
    rows = job(*BATCH, *tools)
    made = fake_server.batches_made()
    assert [len(input_lines(fake_server, b)) for b in made] == [3, 3]
    assert (
        sorted((r["step"], r["batch_id"]) for r in rows)
        == [(0, "batch_fake1")] * 3 + [(1, "batch_fake2")] * 3
    )
    # the second round carries the tool's output back, as a streamed job does
    paris = [r for r in rows if r["conversation_id"] == "paris"]
    assert paris[0]["tool_calls"][0]["name"] == "get_weather"
    assert paris[1]["answer"].startswith(ANSWER_PREFIX + "What's the weather like in Paris")
    assert "(tool get_weather said: " in paris[1]["answer"]
    by_id = {r["record_id"]: r for r in streamed}
    assert sorted(by_id) == sorted(r["record_id"] for r in rows)
    # the same records, but for the call ids the fake server numbers by arrival
    ids = TIMING | {"tool_calls", "tool_results", "messages"}
    for row in rows:
        twin = by_id[row["record_id"]]
        assert {k: v for k, v in row.items() if k not in ids} == {
            k: v for k, v in twin.items() if k not in ids
        }
        for key in ("tool_calls", "tool_results"):
            assert [c["name"] for c in row[key]] == [c["name"] for c in twin[key]]
            assert [c["arguments"] for c in row[key]] == [c["arguments"] for c in twin[key]]
        assert len(row["messages"]) == len(twin["messages"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.api=responses", "conversation_state=previous_response_id"],
            "batch=true with conversation_state=previous_response_id is not supported",
        ),
        (["batch_poll_s=0"], r"batch_poll_s=0\.0 is out of range: use a positive number"),
    ],
)
def test_what_a_batch_cannot_do_is_refused_up_front(
    job: Job, fake_server: FakeOpenAIServer, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        job("batch=true", *overrides)
    assert sum(fake_server.path_counts.values()) == 0


def test_the_offline_model_has_no_batch_api(job: Job) -> None:
    with pytest.raises(ConfigError, match=r"model echo \(engine echo, offline\) does not have"):
        job("batch=true", remote=False)


# ---------------------------------------------------------------------- limits


def test_a_round_past_the_request_limit_is_split(
    job: Job, fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "MAX_REQUESTS", 3)
    rows = job(*BATCH)
    made = fake_server.batches_made()
    assert [len(input_lines(fake_server, b)) for b in made] == [3, 2]
    saved = state(job.dir)["batches"]
    assert [(b["id"], b["round"], len(b["record_ids"])) for b in saved] == [
        ("batch_fake1", 1, 3),
        ("batch_fake2", 1, 2),
    ]
    assert sorted(r["record_id"] for r in rows) == sorted(
        rid for b in saved for rid in b["record_ids"]
    )
    assert sorted(p.name for p in (job.dir / "batch").iterdir()) == [
        "round-1-part-1.jsonl",
        "round-1-part-2.jsonl",
    ]
    assert all(r["error"] is None for r in rows)


def test_a_round_past_the_size_limit_is_split(
    job: Job, fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "MAX_BYTES", 700)
    rows = job(*BATCH)
    files = [fake_server.file_content(b["input_file_id"]) for b in fake_server.batches_made()]
    assert [f.count(b"\n") for f in files] == [2, 2, 1]  # each line takes ~300 bytes
    for data, after in itertools.pairwise(files):
        assert len(data) <= 700
        first_next = after.split(b"\n")[0] + b"\n"
        assert len(data) + len(first_next) > 700  # each file is as full as it may be
    assert len(files[-1]) <= 700
    assert all(r["error"] is None for r in rows)


def test_a_request_larger_than_a_file_may_be_is_an_error_record(
    job: Job, fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "MAX_BYTES", 10)
    rows = job(*BATCH)
    assert fake_server.path_counts["POST /v1/batches"] == 0
    assert {r["error"]["type"] for r in rows} == {"BatchTooLarge"}
    assert "more than a batch input file may (10)" in rows[0]["error"]["message"]


# ---------------------------------------------------------------------- a batch as a whole


def test_a_failed_batch_leaves_error_records_that_resume_sends_again(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.batch_end = "failed"
    rows = job(*BATCH)
    assert {r["error"]["type"] for r in rows} == {"BatchFailed"}
    message = rows[0]["error"]["message"]
    assert message.startswith("batch batch_fake1 failed (token_limit_exceeded: Enqueued token")
    assert message.endswith("run the same command with resume=true to send it again")
    assert [r["cost_usd"] for r in rows] == [0.0] * 5
    fake_server.batch_end = "completed"
    again = job(*BATCH, "resume=true")
    assert fake_server.path_counts["POST /v1/batches"] == 2
    assert len(again) == 5 and all(r["error"] is None for r in again)
    assert {r["batch_id"] for r in again} == {"batch_fake2"}
    aside = records(job.dir, "superseded.jsonl")
    assert sorted(r["record_id"] for r in aside) == sorted(r["record_id"] for r in again)


def test_resume_failed_sends_the_failed_lines_again_in_a_new_batch(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.batch_fail_lines = {3}
    rows = job(*BATCH, "concurrency=1")
    kinds = [(r["error"] or {}).get("type") for r in rows]
    assert kinds == [None, None, "BatchRequestFailed", None, None]
    assert job(*BATCH, "concurrency=1", "resume=true") == rows  # kept without resume_failed
    fake_server.batch_fail_lines = set()
    again = job(*BATCH, "concurrency=1", "resume=true", "resume_failed=true")
    made = fake_server.batches_made()
    assert [len(input_lines(fake_server, b)) for b in made] == [5, 1]
    assert len(again) == 5 and all(r["error"] is None for r in again)
    assert records(job.dir, "superseded.jsonl") == [rows[2]]


def test_an_expired_batch_keeps_its_answers_and_resume_asks_the_rest(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.batch_end = "expired"
    fake_server.batch_expire_after = 2  # of each batch, the first two lines are answered
    rows = job(*BATCH, "questions=math_chat")
    errors = {(r["conversation_id"], r["turn"]): (r["error"] or {}).get("type") for r in rows}
    assert errors == {
        ("times_then_add", 1): None,
        ("divide_square_subtract", 1): None,
        ("add_then_triple", 1): "BatchExpired",
        ("nine_squared", 1): "BatchExpired",
        ("times_then_add", 2): None,
        ("divide_square_subtract", 2): None,
        ("add_then_triple", 2): "Skipped",
        ("divide_square_subtract", 3): None,
    }
    expired = next(r for r in rows if r["conversation_id"] == "nine_squared")
    assert expired["error"]["message"].startswith("batch batch_fake1 expired before this request")
    assert "resume=true" in expired["error"]["message"]
    fake_server.batch_end = "completed"
    again = job(*BATCH, "questions=math_chat", "resume=true")
    made = fake_server.batches_made()
    assert [len(input_lines(fake_server, b)) for b in made] == [4, 2, 1, 2, 1]
    assert len(again) == 8 and all(r["error"] is None for r in again)
    assert sorted(r["error"]["type"] for r in records(job.dir, "superseded.jsonl")) == [
        "BatchExpired",
        "BatchExpired",
        "Skipped",
    ]


# ---------------------------------------------------------------------- resuming a wait


def test_a_killed_wait_resumes_with_the_same_batch(
    job: Job, fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    fake_server.batch_polls = 10**6  # in progress until told otherwise
    overrides = [*fake_model(fake_server), *BATCH, f"cache.dir={tmp_path / 'cache'}"]
    run = validate(compose(overrides))
    plan = plan_job(run, JobInfo(output_dir=job.dir))
    with Executor(run.concurrency, run.cache, progress=False) as executor:
        waiting = executor.submit(plan)
        deadline = time.monotonic() + 20
        while fake_server.path_counts["GET /v1/batches/batch_fake1"] < 2:
            assert time.monotonic() < deadline, "the batch was never polled"
            time.sleep(0.01)
        executor.cancel()
        with pytest.raises(concurrent.futures.CancelledError):
            waiting.result(timeout=10)
    assert not (job.dir / "transcript.jsonl").exists() or records(job.dir) == []
    (saved,) = state(job.dir)["batches"]
    assert (saved["id"], saved["input_file_id"], saved["round"], saved["collected"]) == (
        "batch_fake1",
        "file-fake1",
        1,
        False,
    )
    assert len(saved["record_ids"]) == 5
    with pytest.raises(ConfigError, match=r"batch\.json names batches still out: pass resume=true"):
        job(*BATCH)
    fake_server.batch_polls = 0
    rows = job(*BATCH, "resume=true")
    assert fake_server.path_counts["POST /v1/batches"] == 1  # the same batch, not another
    assert sorted(r["record_id"] for r in rows) == sorted(saved["record_ids"])
    assert {r["batch_id"] for r in rows} == {"batch_fake1"}
    assert all(r["error"] is None for r in rows)
    assert state(job.dir)["batches"][0]["collected"] is True
    again = job(*BATCH, "resume=true")  # nothing left: nothing sent, nothing written twice
    assert fake_server.path_counts["POST /v1/batches"] == 1
    assert again == rows


def test_a_state_file_that_cannot_be_written_stops_the_job(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    (job.dir / "batch.json.tmp").mkdir(parents=True)  # in the way of the atomic rewrite
    with pytest.raises(
        TranscriptWriteError, match=r"cannot write .*batch\.json\.tmp .*resume=true"
    ):
        job(*BATCH)
    assert fake_server.path_counts["POST /v1/batches"] == 1
    assert not (job.dir / "transcript.jsonl").exists() or records(job.dir) == []


@pytest.mark.slow
def test_the_cli_interrupted_while_waiting_resumes_the_wait(
    cli: Cli, fake_server: FakeOpenAIServer
) -> None:
    fake_server.batch_polls = 10**6
    args = cli.args(*fake_model(fake_server), "batch=true", "batch_poll_s=0.05", "progress=false")
    env = cli_env(OPENAI_API_KEY=FAKE_KEY)
    process = subprocess.Popen(
        args, cwd=cli.tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while fake_server.path_counts["GET /v1/batches/batch_fake1"] < 2:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the batch was never polled"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "batch batch_fake1 sent with 5 requests" in out + err
    fake_server.batch_polls = 0
    done = cli(*fake_model(fake_server), "batch=true", "batch_poll_s=0.05", "resume=true", env=env)
    assert done.returncode == 0, done.stderr
    rows = records(cli.run_dir)
    assert fake_server.path_counts["POST /v1/batches"] == 1
    assert len(rows) == 5 and {r["batch_id"] for r in rows} == {"batch_fake1"}


@pytest.mark.slow
def test_each_job_of_a_sweep_sends_its_own_batches(cli: Cli, fake_server: FakeOpenAIServer) -> None:
    env = cli_env(OPENAI_API_KEY=FAKE_KEY)
    args = ("-m", *fake_model(fake_server), "system=helpful,concise", "batch=true")
    done = cli(*args, "batch_poll_s=0.05", "questions=math_chat", env=env)
    assert done.returncode == 0, done.stderr
    assert fake_server.path_counts["POST /v1/batches"] == 6  # 3 rounds of each of 2 jobs
    for job in ("0", "1"):
        rows = records(cli.sweep_dir / job)
        assert len(rows) == 8 and all(r["error"] is None for r in rows)
        saved = state(cli.sweep_dir / job)["batches"]
        assert [len(b["record_ids"]) for b in saved] == [4, 3, 1]
        assert {r["batch_id"] for r in rows} == {b["id"] for b in saved}
        assert not any("batch" in o for o in rows[0]["overrides"])  # run control, not a column
    assert (cli.sweep_dir / "summary.csv").exists()


# ---------------------------------------------------------------------- the fake Batch API


@pytest.fixture
def client(fake_server: FakeOpenAIServer) -> Iterator[OpenAI]:
    with OpenAI(api_key="test", base_url=fake_server.base_url, max_retries=0) as client:
        yield client


def test_the_fake_batch_api_refuses_a_bad_line_and_cancels(
    client: OpenAI, fake_server: FakeOpenAIServer
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    lines = [
        {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body},
        {
            "custom_id": "b",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {**body, "stream": True},
        },
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("in.jsonl", data), purpose="batch")
    assert (uploaded.purpose, uploaded.bytes) == ("batch", len(data))
    bad = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert bad.status == "failed"
    assert bad.errors is not None and bad.errors.data is not None
    assert [(e.code, e.line) for e in bad.errors.data] == [("invalid_request", 2)]
    good = client.files.create(file=("in.jsonl", data.split(b"\n")[0] + b"\n"), purpose="batch")
    fake_server.batch_polls = 5
    made = client.batches.create(
        input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert (made.status, made.request_counts and made.request_counts.total) == ("validating", 1)
    assert client.batches.retrieve(made.id).status == "in_progress"
    assert client.batches.cancel(made.id).status == "cancelling"
    ended = client.batches.retrieve(made.id)
    assert (ended.status, ended.output_file_id, ended.error_file_id) == ("cancelled", None, None)
    assert fake_server.request_count == 0
