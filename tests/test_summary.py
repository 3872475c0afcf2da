"""Scores in the summary: failed answers, tool loops, confidence intervals, pass@k, agreement,
and the one parser of swept values that summary.csv and load_results share."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Job

from runner.analysis.results import load_results
from runner.analysis.stats import (
    Answer,
    bootstrap_interval,
    pass_at_k,
    score_answers,
    wilson_interval,
)
from runner.analysis.summary import format_table, summarize, write_summary
from runner.base.errors import ConfigError
from runner.base.jobfile import JobFacts, write_job_facts
from runner.base.record import CallError, TokenUsage
from runner.base.transcript import TRANSCRIPT_NAME, TranscriptWriter
from runner.cli.experiment import compose, run_job
from runner.core.chat import ChatTurn
from runner.core.validation import validate


def record(
    conversation: str = "c1",
    turn: int = 1,
    *,
    sample: int = 0,
    choice: int = 0,
    step: int = 0,
    answer: str | None = "84",
    expected: str | None = "84",
    score: float | None = None,
    error: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """The fields of a record that the summary reads."""
    return {
        "record_id": f"{conversation}-{turn}-{sample}-{choice}-{step}",
        "job": 0,
        "overrides": overrides or [],
        "conversation_id": conversation,
        "turn": turn,
        "step": step,
        "sample": sample,
        "choice": choice,
        "question": "What is 12 times 7?",
        "answer": None if error else answer,
        "expected": expected,
        "tool_calls": tool_calls or [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        "cost_usd": 0.0,
        "latency_s": 0.01,
        "cache_hit": False,
        "error": {"type": error, "message": "", "status": None} if error else None,
        "score": score,
    }


def write_job(
    directory: Path, records: list[dict[str, Any]], failed_score: float | str | None = "none"
) -> Path:
    """A job dir: its transcript, and its ``job.json`` when ``failed_score`` is given."""
    directory.mkdir(parents=True, exist_ok=True)
    with TranscriptWriter(directory / TRANSCRIPT_NAME) as writer:
        for item in records:
            writer.write(item)
    if failed_score != "none":
        assert not isinstance(failed_score, str)
        write_job_facts(directory, JobFacts(None, [], failed_score, "demo"))
    return directory


CALL = {"id": "call_1", "name": "calculate", "arguments": '{"expression": "12*7"}'}
# a tool loop: the first call asks for a tool (no answer), the second answers; then a turn
# that failed, and a turn skipped because of it
TOOL_LOOP = [
    record("c1", 1, step=0, answer="", tool_calls=[CALL]),
    record("c1", 1, step=1, score=1.0),
    record("c1", 2, step=0, error="RateLimitError"),
    record("c1", 3, step=0, error="Skipped"),
    record("c2", 1, step=0, score=1.0),
    record("c2", 2, step=0, score=0.0),
]


def test_failed_answers_score_failed_score_and_tool_steps_do_not_count(tmp_path: Path) -> None:
    write_job(tmp_path, TOOL_LOOP)
    (row,) = summarize(tmp_path)
    # 3 answers with a score (the tool step is not one), 2 failures at 0.0: 2 / 5
    assert (row.calls, row.errors, row.scored, row.failed) == (6, 2, 3, 2)
    assert row.mean_score == 0.4
    assert row.failed_score == 0.0


def test_failed_score_null_leaves_failures_out(tmp_path: Path) -> None:
    write_job(tmp_path, TOOL_LOOP, failed_score=None)
    (row,) = summarize(tmp_path)
    assert (row.scored, row.failed, row.failed_score) == (3, 0, None)
    assert row.mean_score == pytest.approx(2 / 3, abs=1e-4)
    assert "failed calls are left out (failed_score=null)" in format_table([row])


def test_each_job_reads_its_own_failed_score(tmp_path: Path) -> None:
    write_job(tmp_path / "0", TOOL_LOOP, failed_score=0.5)
    write_job(tmp_path / "1", TOOL_LOOP)  # no job.json: the default, 0.0
    rows = summarize(tmp_path)
    assert [r.failed_score for r in rows] == [0.5, 0.0]
    assert [r.mean_score for r in rows] == [0.6, 0.4]
    assert "failed calls score each job's failed_score" in format_table(rows)


def test_a_failed_tool_step_is_a_final_answer(tmp_path: Path) -> None:
    """A call that asked for tools and failed (too many rounds) ends its turn."""
    write_job(tmp_path, [record("c1", 1, step=4, tool_calls=[CALL], error="ToolRounds")])
    (row,) = summarize(tmp_path)
    assert (row.scored, row.failed, row.mean_score) == (0, 1, 0.0)


def test_failures_of_unscored_questions_do_not_count(tmp_path: Path) -> None:
    """A question set without expected answers has no score, failures or not."""
    records = [
        record("c1", 1, expected=None),
        record("c2", 1, expected=None, error="Timeout"),
    ]
    write_job(tmp_path, records)
    (row,) = summarize(tmp_path)
    assert (row.mean_score, row.scored, row.failed, row.ci95_low) == (None, 0, 0, None)
    assert "failed calls" not in format_table([row])


def test_a_record_scored_despite_its_error_keeps_its_score() -> None:
    """A tool_call scorer scores the calls a turn made before it failed."""
    answers = [
        Answer("c1#1", score=1.0, failed=True, expected=True),
        Answer("c2#1", score=None, failed=True, expected=True),
    ]
    scores = score_answers(answers, 0.0)
    assert (scores.mean, scores.scored, scores.failed) == (0.5, 1, 1)


def test_the_job_result_is_the_summary_mean(job: Job, tmp_path: Path) -> None:
    """What a job returns to Hydra counts failures as the summary does: turn 1 passes, turn 2
    fails (HTTP 500, no retry), turn 3 is skipped after it."""
    questions = tmp_path / "chat.jsonl"
    turns = [{"question": q, "expected": "fake answer"} for q in ("One?", "Two?", "Three?")]
    questions.write_text(json.dumps({"id": "chat", "turns": turns}) + "\n", encoding="utf-8")
    job.server.enqueue("ok", "500")
    common = [
        "questions=trivia_file",
        f"questions.path={questions}",
        "retry.max_attempts=1",
        "cache.enabled=false",
        "progress=false",
        "model=gpt-4.1-mini",
        f"model.base_url={job.server.base_url}",
    ]
    directory, result = run_job(common, tmp_path / "zero")
    assert [r["error"] and r["error"]["type"] for r in _records(directory)] == [
        None,
        "InternalServerError",
        "Skipped",
    ]
    (row,) = summarize(directory)
    assert result.mean_score == pytest.approx(1 / 3)
    assert row.mean_score == round(result.mean_score, 4)
    assert (row.scored, row.failed) == (1, 2)

    job.server.enqueue("ok", "500")
    directory, result = run_job([*common, "failed_score=null"], tmp_path / "null")
    (row,) = summarize(directory)
    assert result.mean_score == row.mean_score == 1.0
    assert (row.scored, row.failed, row.failed_score) == (1, 0, None)


def test_tool_loop_steps_are_not_answers(tmp_path: Path) -> None:
    """The offline model calls the weather tool, then answers: 3 questions x 2 samples."""
    directory, result = run_job(
        ["questions=weather_tools", "tools=weather", "repeat=2", "progress=false"],
        tmp_path / "run",
    )
    assert result.calls == 12
    assert len(result.answers) == 6
    (row,) = summarize(directory)
    assert (row.calls, row.scored, row.failed, row.k) == (12, 6, 0, 2)
    # the first steps' empty answers are not answers: every sample answered alike
    assert row.agreement == 1.0
    assert row.mean_score == result.mean_score == 0.0


def test_wilson_interval_for_pass_fail_scores() -> None:
    # figures as scipy.stats.binomtest(k, n).proportion_ci(method="wilson") gives them
    assert wilson_interval(1, 8) == pytest.approx((0.0224175, 0.4708882), abs=1e-7)
    assert wilson_interval(3, 4) == pytest.approx((0.3006418, 0.9544127), abs=1e-7)
    assert wilson_interval(0, 24) == (0.0, pytest.approx(0.1379762, abs=1e-7))
    assert wilson_interval(5, 5)[1] == 1.0


def test_bootstrap_interval_for_graded_scores() -> None:
    # two values: resampled means are 0.25, 0.5 or 0.75 (a quarter, a half, a quarter)
    assert bootstrap_interval([0.25, 0.75]) == (0.25, 0.75)
    assert bootstrap_interval([0.5] * 10) == (0.5, 0.5)
    graded = [0.0, 0.5, 1.0, 0.5, 0.25, 0.75]
    assert bootstrap_interval(graded) == bootstrap_interval(graded)  # a fixed seed
    answers = [
        Answer(f"q{i}#1", score=s, failed=False, expected=True) for i, s in enumerate(graded)
    ]
    scores = score_answers(answers, 0.0)
    assert scores.ci_method == "bootstrap"
    assert (scores.ci_low, scores.ci_high) == bootstrap_interval(graded)


def test_pass_at_k_estimator() -> None:
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # 1 - C(3,3) / C(5,3)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(3, 0, 3) == 0.0
    assert pass_at_k(2, 1, 3) == 1.0  # fewer answers than k: whether any is correct


def repeated() -> list[dict[str, Any]]:
    """Two questions asked three times: q1 right once, q2 never."""
    q1 = [("84", 1.0), (" 84 ", 0.0), ("85", 0.0)]
    q2 = [("Paris", 0.0), ("paris", 0.0), ("PARIS", 0.0)]
    return [
        record(conversation, 1, sample=sample, answer=answer, score=score)
        for conversation, answers in (("q1", q1), ("q2", q2))
        for sample, (answer, score) in enumerate(answers)
    ]


def test_repeated_samples_give_pass_at_k_and_agreement(tmp_path: Path) -> None:
    write_job(tmp_path, repeated())
    (row,) = summarize(tmp_path)
    assert row.k == 3
    assert row.mean_score == round(1 / 6, 4)
    assert (row.ci95_low, row.ci95_high, row.ci_method) == (0.0301, 0.5635, "wilson")
    assert row.pass_at_1 == round((1 / 3 + 0) / 2, 4)
    assert row.pass_at_k == 0.5  # q1 passes at 3, q2 does not
    # q1: "84" twice of three (whitespace aside); q2: one answer, whatever its case
    assert row.agreement == round((2 / 3 + 1) / 2, 4)
    table = format_table([row])
    header = table.splitlines()[0].split()
    assert header[-6:] == ["CI", "scored", "failed", "pass@1", "pass@3", "agree"]
    assert "pass@3: k = answers per question (repeat x sampling.n)" in table


def test_choices_count_as_answers(tmp_path: Path) -> None:
    records = [
        record("q1", 1, sample=s, choice=c, score=1.0 if (s, c) == (0, 0) else 0.0)
        for s in range(2)
        for c in range(3)
    ]
    write_job(tmp_path, records)
    (row,) = summarize(tmp_path)
    assert row.k == 6
    assert row.pass_at_1 == round(1 / 6, 4)
    assert row.pass_at_k == 1.0


def test_one_answer_per_question(tmp_path: Path) -> None:
    """pass@1 = pass@k = the mean; agreement is blank (no question has two answers)."""
    write_job(tmp_path, [record("q1", 1, score=1.0), record("q2", 1, score=0.0)])
    (row,) = summarize(tmp_path)
    assert row.k == 1
    assert row.mean_score == row.pass_at_1 == row.pass_at_k == 0.5
    assert row.agreement is None
    with (write_summary(tmp_path, [row])).open() as fh:
        (written,) = list(csv.DictReader(fh))
    assert written["agreement"] == ""
    assert written["pass_at_k"] == "0.5"
    # with one answer a question, the table leaves pass@k and agreement out
    assert "pass@" not in format_table([row]) and "agree" not in format_table([row])


def test_summary_csv_has_the_score_columns(tmp_path: Path) -> None:
    write_job(tmp_path, TOOL_LOOP)
    path = write_summary(tmp_path, summarize(tmp_path))
    with path.open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert {k: row[k] for k in ("mean_score", "scored", "failed", "failed_score", "k")} == {
        "mean_score": "0.4",
        "scored": "3",
        "failed": "2",
        "failed_score": "0.0",
        "k": "1",
    }
    assert (row["ci95_low"], row["ci95_high"], row["ci_method"]) == ("0.1176", "0.7693", "wilson")


def test_the_table_states_how_failures_count(tmp_path: Path) -> None:
    write_job(tmp_path, TOOL_LOOP)
    table = format_table(summarize(tmp_path))
    lines = table.splitlines()
    assert lines[0].split()[-5:] == ["score", "95%", "CI", "scored", "failed"]
    assert lines[1].split()[-4:] == ["0.400", "0.118-0.769", "3", "2"]
    assert lines[2] == (
        "score: mean of the final answers; failed calls score 0.0 (failed_score); 95% CI: "
        "Wilson for pass/fail scores, bootstrap for graded ones"
    )


def test_judgments_fill_scores(tmp_path: Path) -> None:
    """A judged record's score comes from judgments.jsonl beside the transcript."""
    records = [record("q1", 1, expected=None), record("q2", 1, expected=None)]
    write_job(tmp_path, records)
    judgments = [
        {"record_id": records[0]["record_id"], "score": 0.5, "reasoning": "half", "cost_usd": 1e-4},
        {"record_id": records[1]["record_id"], "score": 1.0, "reasoning": "ok", "cost_usd": 2e-4},
    ]
    (tmp_path / "judgments.jsonl").write_text(
        "".join(json.dumps(j) + "\n" for j in judgments), encoding="utf-8"
    )
    (row,) = summarize(tmp_path)
    assert (row.mean_score, row.scored, row.ci_method) == (0.75, 2, "bootstrap")
    df = load_results(tmp_path)
    assert df["score"].tolist() == [0.5, 1.0]
    assert df["judge.reasoning"].tolist() == ["half", "ok"]


SWEPT_VALUES = {  # override text -> the value Hydra's grammar gives it
    "sampling.temperature=0.7": 0.7,
    "sampling.seed=1": 1,
    "sampling.top_p=1e-3": 0.001,
    "max_history=null": None,
    "+label=yes": "yes",
    "model.name=gpt-4.1": "gpt-4.1",
    "+flag=true": True,
    "+day=2026-11-20": "2026-11-20",
}


def test_swept_values_are_typed_alike_in_summary_csv_and_load_results(tmp_path: Path) -> None:
    overrides = list(SWEPT_VALUES)
    write_job(tmp_path, [record(overrides=overrides)])
    (row,) = summarize(tmp_path)
    df = load_results(tmp_path)
    for text, value in SWEPT_VALUES.items():
        key = text.lstrip("+").partition("=")[0]
        column = df.attrs["swept_columns"][key]
        loaded = df[column].iloc[0]
        assert row.swept[key] == value and type(row.swept[key]) is type(value), text
        assert (loaded is None and value is None) or (loaded == value), text
        assert type(loaded.item() if hasattr(loaded, "item") else loaded) is type(value), text
    with write_summary(tmp_path, [row]).open() as fh:
        (written,) = list(csv.DictReader(fh))
    assert written["sampling.top_p"] == "0.001"
    assert written["sampling.seed"] == "1"
    assert written["max_history"] == ""
    assert written["label"] == "yes"
    assert written["flag"] == "True"


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan"])
def test_failed_score_out_of_range(value: str) -> None:
    with pytest.raises(ConfigError, match=rf"failed_score={value}.* from 0 to 1, or null"):
        validate(compose([f"failed_score={value}"]))


def test_failed_score_may_be_null() -> None:
    assert validate(compose(["failed_score=null"])).failed_score is None
    assert validate(compose([])).failed_score == 0.0


def test_chat_turn_repr() -> None:
    turn = ChatTurn(
        question="What is 12 times 7?",
        answer="84",
        usage=TokenUsage(34, 12, 46),
        estimated_prompt_tokens=34,
        dropped_messages=0,
        cost_usd=0.000012,
        latency_s=0.8,
    )
    assert repr(turn) == "<ChatTurn 'What is 12 times 7?' -> '84' · 34+12 tok · $0.000012 · 0.80 s>"
    long = ChatTurn(
        question="Explain, step by step and in detail, how a\nrefrigerator keeps food cold.",
        answer=None,
        usage=TokenUsage(source="none"),
        estimated_prompt_tokens=None,
        dropped_messages=0,
        cost_usd=None,
        latency_s=None,
        error=CallError("RateLimitError", "429 Too Many Requests", 429),
    )
    assert repr(long) == "<ChatTurn 'Explain, step by step and in detail, ho…' -> RateLimitError>"


def _records(directory: Path) -> list[dict[str, Any]]:
    path = directory / TRANSCRIPT_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
