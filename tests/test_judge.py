"""The judge scorer: a model grades answers against a rubric into judgments.jsonl (offline on
echo, on the wire against the fake server), the summary and results show it, and
``python -m runner judge DIR`` grades a finished run or sweep again without the answering model."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY, Cli, Job, cli_env, records
from fake_openai import ANSWER_PREFIX, FakeOpenAIServer

from runner.analysis.judgments import judge_costs, latest_judgments
from runner.analysis.results import load_results
from runner.analysis.summary import format_table, summarize
from runner.base.errors import ConfigError, CredentialsError
from runner.base.record import TokenUsage
from runner.cli.experiment import compose, run_job
from runner.cli.judge_command import rejudge
from runner.core.costs import cost_usd
from runner.core.judge import JudgePlan, judge_messages, parse_verdict, plan_judge, verdict_schema
from runner.core.validation import validate

CAPITALS = {
    "france": ("What is the capital of France?", "Paris"),
    "japan": ("What is the capital of Japan?", "Tokyo"),
    "canada": ("What is the capital of Canada?", "Ottawa"),
    "australia": ("What is the capital of Australia?", "Canberra"),
    "egypt": ("What is the capital of Egypt?", "Cairo"),
}
DEFAULT_RUBRIC = validate(compose()).judge.rubric
OFFLINE = ["questions.scorer.kind=judge", "model@judge.model=echo"]
PASS_FAIL_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "passed": {"type": "boolean"}},
    "required": ["reasoning", "passed"],
    "additionalProperties": False,
}


def judged_by(server: FakeOpenAIServer, *extra: str) -> list[str]:
    """Overrides that make gpt-4o-mini on the fake server the judge."""
    return ["model@judge.model=gpt-4o-mini", f"judge.model.base_url={server.base_url}", *extra]


def judge_requests(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [r for r in server.requests if r.get("model") == "gpt-4o-mini"]


def run_judge(
    cli: Cli, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m runner judge ARGS`` as a user runs it (Cli adds hydra.* keys it refuses)."""
    return subprocess.run(
        [sys.executable, "-m", "runner", "judge", *args],
        cwd=cli.tmp,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def judge_plan(*overrides: str) -> JudgePlan:
    return plan_judge(validate(compose(list(overrides))).judge, check_credentials=False)


# ---------------------------------------------------------------------- settings


def test_verdict_schemas_are_strict_objects() -> None:
    assert verdict_schema(None) == PASS_FAIL_SCHEMA
    assert verdict_schema(5) == {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "grade": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["reasoning", "grade"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("text", "points", "verdict"),
    [
        ('{"reasoning": "right", "passed": true}', None, (None, True, "right")),
        ('{"reasoning": "wrong", "passed": false}', None, (None, False, "wrong")),
        ('```json\n{"reasoning": "ok", "grade": 4}\n```', 5, (4, True, "ok")),
        ('{"grade": 2.0, "reasoning": 7}', 5, (2, True, None)),
    ],
)
def test_a_verdict_is_parsed(text: str, points: int | None, verdict: tuple[Any, ...]) -> None:
    assert parse_verdict(text, points) == verdict


@pytest.mark.parametrize(
    ("text", "points", "message"),
    [
        ("Looks right to me.", None, "not JSON: 'Looks right to me.'"),
        ('["passed"]', None, "not a JSON object"),
        ('{"reasoning": "x", "passed": "yes"}', None, "no true/false 'passed'"),
        ('{"reasoning": "x", "grade": 6}', 5, "grade 6 is out of the scale 1-5"),
        ('{"reasoning": "x", "grade": 0}', 5, "grade 0 is out of the scale 1-5"),
        ('{"reasoning": "x", "grade": true}', 5, "no whole-number 'grade'"),
        ('{"reasoning": "x", "grade": 2.5}', 5, "no whole-number 'grade'"),
        ('{"reasoning": "x"', 5, "not JSON"),
    ],
)
def test_a_bad_verdict_says_what_is_wrong(text: str, points: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_verdict(text, points)


def test_judge_presets_bring_their_model_and_another_is_chosen_the_hydra_way() -> None:
    default = validate(compose(["model=gpt-4.1"]))
    assert (default.judge.name, default.judge.scale, default.judge.threshold) == (
        "default",
        "pass_fail",
        None,
    )
    assert default.judge.model is not None and default.judge.model.name == "gpt-6-luna"
    assert default.judge.model.prices.input == 0.1
    strict = validate(compose(["judge=strict", "model@judge.model=echo", "model=gpt-4.1"]))
    assert (strict.judge.name, strict.judge.scale, strict.judge.threshold) == ("strict", "1-5", 4)
    assert strict.judge.model is not None and strict.judge.model.engine == "echo"
    assert strict.model.name == "gpt-4.1"  # the answering model is not the judge's


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["judge.scale=1-1"], r"judge.scale='1-1' is not a scale: use pass_fail, or 1-N"),
        (["judge.scale=ten"], r"judge.scale='ten' is not a scale"),
        (["judge.scale=1-5"], r"judge.threshold=None does not fit judge.scale=1-5: .* 1 to 5"),
        (["judge=strict", "judge.threshold=6"], r"judge.threshold=6 does not fit"),
        (["judge.temperature=3"], r"judge.temperature=3.0 is out of range"),
        (["judge.max_tokens=0"], r"judge.max_tokens=0 is out of range"),
        (
            ["model@judge.model=gpt-5.4-mini", "judge.temperature=0"],
            r"judge model gpt-5.4-mini does not accept judge.temperature=0.0 .*set "
            r"judge.temperature=null",
        ),
        (["judge.model.api=rest"], r"judge.model.api='rest' is not an API"),
    ],
)
def test_bad_judge_settings_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides))


def test_naming_the_judge_model_as_a_value_points_at_the_preset_override() -> None:
    with pytest.raises(ConfigError, match=r"judge.model=echo: .* model@judge.model=echo$"):
        compose(["judge.model=echo"])


def test_judge_key_follows_rubric_scale_threshold_and_model() -> None:
    base = judge_plan()
    assert judge_plan().key == base.key
    others = [
        judge_plan("judge.rubric=Be brief."),
        judge_plan("judge.scale=1-5", "judge.threshold=3"),
        judge_plan("judge.scale=1-5", "judge.threshold=4"),
        judge_plan("model@judge.model=gpt-6-sol"),
    ]
    assert len({base.key, *(p.key for p in others)}) == 5
    # a threshold says nothing on a pass/fail scale
    assert judge_plan("judge.threshold=3").key == base.key


def test_a_rubric_file_is_read_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rubric.txt").write_text("\ufeffName the city.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    plan = judge_plan("judge.rubric_path=rubric.txt")
    assert plan.rubric == "Name the city."
    assert plan.key == judge_plan("judge.rubric=Name the city.").key
    with pytest.raises(ConfigError, match=r"judge.rubric_path='nope.txt' not found .*fix judge"):
        judge_plan("judge.rubric_path=nope.txt")
    with pytest.raises(ConfigError, match=r"the judge has no rubric \(judge.rubric is empty\)"):
        judge_plan("judge.rubric=' '")


def test_a_judge_without_a_key_says_how_to_judge_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(
        CredentialsError,
        match=r"^judge model gpt-6-luna needs an API key: set the environment variable "
        r"OPENAI_API_KEY \(or judge offline with model@judge.model=echo\)$",
    ):
        plan_judge(validate(compose()).judge)


def test_the_prompt_holds_question_earlier_turns_expected_rubric_and_answer() -> None:
    plan = judge_plan("judge.scale=1-4", "judge.threshold=3", "judge.rubric=Right number.")
    record = {
        "question": "Now add 16 to that.",
        "expected": "100",
        "answer": "100",
        "messages": [
            {"role": "system", "content": "Be concise."},
            {"role": "user", "content": "What is 12 times 7?"},
            {"role": "assistant", "content": "84"},
            {"role": "user", "content": "Now add 16 to that."},
        ],
    }
    system, user = judge_messages(plan, record)
    assert system["role"] == "system"
    assert '"grade", a whole number from 1 (worst) to 4 (best)' in system["content"]
    assert user == {
        "role": "user",
        "content": "[Question]\nNow add 16 to that.\n\n"
        "[Earlier turns of the conversation]\nuser: What is 12 times 7?\nassistant: 84\n\n"
        "[Expected answer]\n100\n\n[Rubric]\nRight number.\n\n[Answer to grade]\n100",
    }
    del record["expected"]
    assert "[Expected answer]" not in judge_messages(plan, record)[1]["content"]


# ---------------------------------------------------------------------- a job


def test_offline_the_judge_grades_every_answer_after_its_record(tmp_path: Path) -> None:
    out, result = run_job([*OFFLINE, f"cache.dir={tmp_path / 'cache'}"], tmp_path / "run")
    rows = records(out)
    assert len(rows) == 5
    assert [r["score"] for r in rows] == [None] * 5  # the record is written as it was
    assert all("judge" not in key for r in rows for key in r)
    judgments = records(out, "judgments.jsonl")
    assert [j["record_id"] for j in judgments] == [r["record_id"] for r in rows]
    key = judge_plan(*OFFLINE).key
    for judgment, row in zip(judgments, rows, strict=True):
        question, expected = CAPITALS[row["conversation_id"]]
        assert judgment["judge_key"] == key
        assert (judgment["judge"], judgment["judge_model"], judgment["base_url"]) == (
            "default",
            "echo",
            None,
        )
        assert (judgment["scale"], judgment["threshold"], judgment["grade"]) == (
            "pass_fail",
            None,
            None,
        )
        assert (judgment["score"], judgment["passed"], judgment["error"]) == (1.0, True, None)
        # echo answers a string with the last user message: the whole prompt
        assert judgment["reasoning"] == (
            f"[Question]\n{question}\n\n[Expected answer]\n{expected}\n\n[Rubric]\n"
            f"{DEFAULT_RUBRIC}\n\n[Answer to grade]\n{question}"
        )
        assert judgment["cost_usd"] == 0.0 and judgment["usage"]["source"] == "api"
        assert judgment["offline"] is True and judgment["attempts"] == 1
    assert result.mean_score == 1.0  # what Hydra's optimizing sweepers read

    (row,) = summarize(out)
    assert (row.mean_score, row.judge_cost_usd) == (1.0, 0.0)
    assert format_table([row]).splitlines()[0].split()[-2:] == ["judge", "$"]
    df = load_results(out)
    assert df["judge.score"].tolist() == [1.0] * 5
    assert df["judge.passed"].tolist() == [True] * 5
    assert df["judge.model"].tolist() == ["echo"] * 5
    assert df["judge.error"].tolist() == [None] * 5
    assert df["score"].tolist() == [1.0] * 5  # the judge's, where the record has none


def test_a_graded_scale_records_grade_score_and_threshold(tmp_path: Path) -> None:
    common = [*OFFLINE, "judge=strict", f"cache.dir={tmp_path / 'cache'}"]
    out, result = run_job(common, tmp_path / "a")
    judgments = records(out, "judgments.jsonl")
    assert len(judgments) == 5
    # echo gives an integer 1: the worst grade, under the threshold of 4
    assert {(j["grade"], j["score"], j["passed"], j["threshold"]) for j in judgments} == {
        (1, 0.0, False, 4)
    }
    assert result.mean_score == 0.0
    out, _ = run_job([*common, "judge.threshold=1", "judge.scale=1-3"], tmp_path / "b")
    judgments = records(out, "judgments.jsonl")
    assert {(j["grade"], j["score"], j["passed"], j["scale"]) for j in judgments} == {
        (1, 0.0, True, "1-3")
    }


def test_only_turns_scored_by_the_judge_are_judged(tmp_path: Path) -> None:
    items = (
        "questions.items=[{id: a, question: 'Capital of Peru?', expected: Lima, scorer: judge},"
        "{id: b, question: 'Capital of Chile?', expected: Santiago}]"
    )
    out, result = run_job(
        [items, "questions.scorer.kind=contains", "model@judge.model=echo"], tmp_path / "run"
    )
    rows = {r["conversation_id"]: r for r in records(out)}
    (judgment,) = records(out, "judgments.jsonl")
    assert judgment["record_id"] == rows["a"]["record_id"]
    assert (rows["a"]["score"], rows["b"]["score"]) == (None, 0.0)
    assert sorted(result.scores) == [0.0, 1.0]


def test_judge_calls_go_on_the_wire_with_structured_output_and_their_cost(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    rows = job(
        "questions.scorer.kind=judge",
        "cache.enabled=false",
        "concurrency=1",
        *judged_by(fake_server),
    )
    judgments = {j["record_id"]: j for j in records(job.dir, "judgments.jsonl")}
    assert len(fake_server.requests) == 10
    asked = judge_requests(fake_server)
    assert len(asked) == 5
    prices = validate(compose(["model=gpt-4o-mini"])).model.prices
    for body in asked:
        assert set(body) == {"model", "messages", "response_format", "stream", "stream_options"}
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "judgment", "schema": PASS_FAIL_SCHEMA, "strict": True},
        }
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["stream_options"] == {"include_usage": True}
    for row in rows:
        judgment = judgments[row["record_id"]]
        question, expected = CAPITALS[row["conversation_id"]]
        prompt = next(
            b for b in asked if f"[Question]\n{question}\n" in b["messages"][1]["content"]
        )
        assert prompt["messages"][1]["content"].endswith(
            f"[Expected answer]\n{expected}\n\n[Rubric]\n{DEFAULT_RUBRIC}\n\n"
            f"[Answer to grade]\n{ANSWER_PREFIX}{question}"
        )
        assert judgment["base_url"] == fake_server.base_url
        assert (judgment["score"], judgment["passed"], judgment["offline"]) == (1.0, True, False)
        usage = TokenUsage(**judgment["usage"])
        assert usage.prompt_tokens == 7 * 2 + sum(
            len(m["content"].split()) for m in prompt["messages"]
        )
        assert judgment["cost_usd"] == cost_usd(usage, prices)
        assert judgment["cost_usd"] > 0
    assert judge_costs(job.dir) == pytest.approx(sum(j["cost_usd"] for j in judgments.values()))
    # judged as the answers complete, not after the last one
    models = [r["model"] for r in fake_server.requests]
    assert models.index("gpt-4o-mini") < len(models) - 1 - models[::-1].index("gpt-4.1-mini")


def test_a_responses_api_judge_asks_in_text_format(job: Job, fake_server: FakeOpenAIServer) -> None:
    job(
        "questions.items=[{id: a, question: 'Capital of Peru?', expected: Lima}]",
        "questions.scorer.kind=judge",
        "judge=strict",
        "judge.max_tokens=200",
        *judged_by(fake_server, "judge.model.api=responses"),
    )
    (body,) = judge_requests(fake_server)
    assert body["text"] == {
        "format": {
            "type": "json_schema",
            "name": "judgment",
            "schema": verdict_schema(5),
            "strict": True,
        }
    }
    assert body["max_output_tokens"] == 200
    plan = judge_plan("judge=strict", "model@judge.model=gpt-4o-mini")
    assert body["instructions"] == judge_messages(plan, {})[0]["content"]
    assert '"grade", a whole number from 1 (worst) to 5 (best)' in body["instructions"]
    assert [item["role"] for item in body["input"]] == ["user"]
    (judgment,) = records(job.dir, "judgments.jsonl")
    assert (judgment["grade"], judgment["score"], judgment["passed"]) == (1, 0.0, False)


def test_a_judge_answer_that_is_not_json_is_a_judge_error(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    # cut to one word, the verdict is not JSON: paid for, but no score
    (row,) = job(
        "questions.items=[{id: a, question: 'Capital of Peru?', expected: Lima}]",
        "questions.scorer.kind=judge",
        *judged_by(fake_server, "judge.max_tokens=1"),
    )
    (judgment,) = records(job.dir, "judgments.jsonl")
    assert row["error"] is None and row["score"] is None
    assert judgment["error"]["type"] == "JudgeError"
    assert judgment["error"]["message"].startswith("the judge's answer is not JSON: '{")
    assert (judgment["score"], judgment["passed"], judgment["grade"]) == (None, None, None)
    assert judgment["usage"]["completion_tokens"] == 1 and judgment["cost_usd"] > 0
    assert judge_requests(fake_server)[0]["max_tokens"] == 1
    (summary,) = summarize(job.dir)
    assert summary.mean_score is None and summary.judge_cost_usd == judgment["cost_usd"]


def test_a_failed_judge_call_is_recorded_and_the_answer_kept(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue("ok", "401")  # the answer, then the judge
    (row,) = job(
        "questions.items=[{id: a, question: 'Capital of Peru?'}]",
        "questions.scorer.kind=judge",
        *judged_by(fake_server),
    )
    (judgment,) = records(job.dir, "judgments.jsonl")
    assert row["answer"] == ANSWER_PREFIX + "Capital of Peru?" and row["error"] is None
    assert judgment["error"]["type"] == "AuthenticationError"
    assert judgment["error"]["status"] == 401
    assert (judgment["score"], judgment["cost_usd"], judgment["attempts"]) == (None, 0.0, 1)
    assert "[Expected answer]" not in judge_requests(fake_server)[0]["messages"][1]["content"]


def test_judge_calls_are_retried_and_cached_as_any_call(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue("ok", "500")  # the answer, then the judge's first attempt
    one = ["questions.items=[{id: a, question: 'Capital of Peru?', expected: Lima}]"]
    job(*one, "questions.scorer.kind=judge", *judged_by(fake_server))
    (first,) = records(job.dir, "judgments.jsonl")
    assert (first["attempts"], first["score"], first["cache_hit"]) == (2, 1.0, False)
    assert first["cost_usd"] > 0
    job.dir = job.dir.with_name("again")
    fake_server.reset()
    job(*one, "questions.scorer.kind=judge", *judged_by(fake_server))
    assert fake_server.request_count == 0  # the answer and the verdict: both from the cache
    (again,) = records(job.dir, "judgments.jsonl")
    assert (again["cache_hit"], again["cost_usd"], again["attempts"]) == (True, 0.0, 0)
    assert again["cached_cost_usd"] == first["cost_usd"]
    assert again["reasoning"] == first["reasoning"]


def test_resume_judges_the_answers_whose_judge_was_not_asked(
    job: Job, fake_server: FakeOpenAIServer
) -> None:
    judged = ["questions.scorer.kind=judge", "cache.enabled=false", *judged_by(fake_server)]
    job(*judged)
    first = records(job.dir, "judgments.jsonl")
    lines = (job.dir / "judgments.jsonl").read_text().splitlines()
    (job.dir / "judgments.jsonl").write_text("\n".join(lines[:2]) + "\n")  # killed after two
    fake_server.reset()
    _, result = run_job(
        [
            "model=gpt-4.1-mini",
            f"model.base_url={fake_server.base_url}",
            *judged,
            "resume=true",
        ],
        job.dir,
    )
    assert len(fake_server.requests) == 3  # no answer asked again: three judge calls
    assert {r["model"] for r in fake_server.requests} == {"gpt-4o-mini"}
    again = records(job.dir, "judgments.jsonl")
    assert sorted(j["record_id"] for j in again) == sorted(j["record_id"] for j in first)
    assert result.mean_score == 1.0 and len(result.scores) == 5


# ---------------------------------------------------------------------- judging again


def two_jobs(job: Job, tmp_path: Path) -> Path:
    """A sweep-like dir of two jobs answered by gpt-4.1-mini on the fake server."""
    sweep = tmp_path / "sweep"
    for number, system in enumerate(["helpful", "concise"]):
        run_job(
            [
                "model=gpt-4.1-mini",
                f"model.base_url={job.server.base_url}",
                f"system={system}",
                f"cache.dir={job.cache}",
            ],
            sweep / str(number),
        )
    return sweep


def test_rejudge_calls_only_the_judge_and_resumes(
    job: Job, fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    sweep = two_jobs(job, tmp_path)
    fake_server.reset()
    cache = f"cache.dir={job.cache}"
    rows = rejudge(sweep, [*judged_by(fake_server), cache])
    # the jobs' answers are the same text: each judge prompt is sent once, and the other job's
    # verdict is a cache hit
    assert len(fake_server.requests) == 5
    assert {r["model"] for r in fake_server.requests} == {"gpt-4o-mini"}
    assert [(r.answers, r.judged, r.kept, r.errors, r.mean_score) for r in rows] == [
        (5, 5, 0, 0, 1.0)
    ] * 2
    hits = 0
    for number, row in zip(("0", "1"), rows, strict=True):
        answers = {r["record_id"] for r in records(sweep / number)}
        judgments = records(sweep / number, "judgments.jsonl")
        assert {j["record_id"] for j in judgments} == answers
        hits += sum(j["cache_hit"] for j in judgments)
        assert row.cost_usd == judge_costs(sweep / number)
    assert hits == 5
    assert (rows[0].cost_usd or 0) + (rows[1].cost_usd or 0) > 0

    fake_server.reset()
    rows = rejudge(sweep, [*judged_by(fake_server), cache])
    assert fake_server.request_count == 0
    assert [(r.judged, r.kept, r.mean_score, r.cost_usd) for r in rows] == [(0, 5, 1.0, None)] * 2

    rows = rejudge(sweep, [*judged_by(fake_server), cache], force=True)
    assert fake_server.request_count == 0  # judged again, from the response cache
    assert [(r.judged, r.kept, r.cost_usd) for r in rows] == [(5, 0, 0.0)] * 2
    assert len(records(sweep / "0", "judgments.jsonl")) == 10

    rows = rejudge(sweep, [*judged_by(fake_server), cache, "judge=strict"])
    assert fake_server.request_count == 5  # another judge key: judged anew
    assert [(r.judged, r.mean_score) for r in rows] == [(5, 0.0)] * 2
    df = load_results(sweep)
    assert df["judge.grade"].tolist() == [1] * 10  # the latest verdict of each record
    assert df["judge.score"].tolist() == [0.0] * 10
    # the records' own scores (contains) stay: 'fake answer to: ...' names no capital
    assert df["score"].tolist() == [0.0] * 10
    strict = judge_plan(*judged_by(fake_server), "judge=strict").key
    assert len(latest_judgments(sweep / "1", strict)) == 5


@pytest.mark.slow
def test_cli_runs_with_an_offline_judge_and_judges_again(cli: Cli) -> None:
    done = cli("questions=capitals", "questions.scorer.kind=judge", "model@judge.model=echo")
    assert done.returncode == 0, done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("job"))
    assert header.split()[-2:] == ["judge", "$"]
    assert len(records(cli.run_dir, "judgments.jsonl")) == 5
    (row,) = csv.DictReader((cli.run_dir / "summary.csv").read_text().splitlines())
    assert (row["mean_score"], row["judge_cost_usd"]) == ("1.0", "0.0")

    again = run_judge(cli, str(cli.run_dir), "judge=strict", "model@judge.model=echo")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "job  answers  judged  kept  errors  score  judge $",
        ".          5       5     0       0  0.000  0.000000",
    ]
    assert len(records(cli.run_dir, "judgments.jsonl")) == 10
    (row,) = csv.DictReader((cli.run_dir / "summary.csv").read_text().splitlines())
    # the latest verdicts: strict's grade 1
    assert (row["mean_score"], row["judge_cost_usd"]) == ("0.0", "0.0")


@pytest.mark.slow
def test_cli_rejudge_exits_3_when_every_judge_call_fails_and_2_for_bad_input(
    cli: Cli, fake_server: FakeOpenAIServer
) -> None:
    assert cli("questions=capitals").returncode == 0
    fake_server.enqueue(*["401"] * 5)
    env = cli_env(OPENAI_API_KEY=FAKE_KEY)
    judge = [str(cli.run_dir), *judged_by(fake_server), f"cache.dir={cli.cache_dir}"]
    failed = run_judge(cli, *judge, env=env)
    assert failed.returncode == 3, failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (
        "runner: error: all 5 judge calls failed; most common: AuthenticationError (5): see the "
        f"error of each judgment in the judgments.jsonl files under {cli.run_dir}"
    )
    assert fake_server.request_count == 5
    assert {r["model"] for r in fake_server.requests} == {"gpt-4o-mini"}
    for args, message in [
        ([], "judge needs the run or sweep dir to judge first"),
        ([str(cli.tmp / "nope")], f"{cli.tmp / 'nope'}: no such directory"),
        ([str(cli.run_dir), "model=gpt-4.1"], "judge takes the judge's settings"),
        ([str(cli.run_dir), "judge.scale=1-0"], "judge.scale='1-0' is not a scale"),
    ]:
        bad = run_judge(cli, *args, env=env)
        assert bad.returncode == 2, bad.stderr
        (line,) = bad.stderr.strip().splitlines()
        assert line.startswith("runner: error: " + message), line
    usage = run_judge(cli, "--help")
    assert usage.returncode == 0
    assert usage.stdout.startswith("usage: python -m runner judge DIR [judge=NAME]")


def test_judgments_torn_last_line_is_skipped(tmp_path: Path) -> None:
    line = {"record_id": "r1", "judge_key": "k", "score": 1.0, "cost_usd": 0.5, "error": None}
    (tmp_path / "judgments.jsonl").write_text(json.dumps(line) + '\n{"record_id": "r2", "sc')
    assert latest_judgments(tmp_path) == {"r1": line}
    assert judge_costs(tmp_path) == 0.5
