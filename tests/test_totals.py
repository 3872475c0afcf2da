"""One totals rule for records, whoever adds them up: a job, the progress line, the summary, a
cell of the report; and the same figures whether records come a call at a time or at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.analysis.summary import summarize
from runner.analysis.totals import Totals
from runner.base.jobfile import JOB_FILE, JobFacts, read_job_facts, write_job_facts
from runner.base.transcript import TRANSCRIPT_NAME, TranscriptWriter, find_transcripts


def record(conv: str, turn: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "record_id": f"{conv}-{turn}-{fields.get('step', 0)}-{fields.get('choice', 0)}",
        "conversation_id": conv,
        "turn": turn,
        "step": 0,
        "choice": 0,
        "answer": "ok",
        "expected": "ok",
        "tool_calls": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        "cost_usd": 0.5,
        "latency_s": 1.0,
        "cache_hit": False,
        "error": None,
        "score": 1.0,
    }
    return base | fields


CALL = {"id": "c", "name": "f", "arguments": "{}"}
RECORDS = [
    record("a", 1, tool_calls=[CALL], answer="", score=None),  # asks for a tool
    record("a", 1, step=1, cost_usd=None, latency_s=2.0),  # its answer, no price known
    record("b", 1, usage={"prompt_tokens": 3, "completion_tokens": None, "source": "estimate"}),
    record("b", 1, choice=1, cache_hit=True, cost_usd=0.0, latency_s=0.0),
    record("c", 1, error={"type": "Timeout", "message": ""}, usage={}, cost_usd=None, score=None),
    record("c", 2, error={"type": "Skipped", "message": ""}, usage={}, latency_s=None, score=None),
]


def test_the_figures_of_some_records() -> None:
    totals = Totals.of(RECORDS)
    assert (totals.calls, totals.errors, totals.skipped, totals.turns) == (6, 2, 1, 4)
    assert (totals.prompt_tokens, totals.completion_tokens, totals.total_tokens) == (33, 6, 36)
    assert totals.estimated
    assert totals.cost_usd == 0.5 + 0.5 + 0.0 + 0.5
    assert totals.latency_s == 1.0 + 2.0 + 1.0 + 0.0 + 1.0
    assert totals.latencies == [1.0, 2.0, 1.0]  # answered calls not from the cache
    assert [(a.question, a.score, a.failed) for a in totals.answers] == [
        ("a#1", 1.0, False),
        ("b#1", 1.0, False),
        ("b#1", 1.0, False),
        ("c#1", None, True),
        ("c#2", None, True),
    ]


def test_nothing_known_stays_unknown() -> None:
    totals = Totals.of([record("a", 1, usage=None, cost_usd=None, latency_s=None)])
    assert (totals.prompt_tokens, totals.cost_usd, totals.latency_s) == (None, None, None)
    assert not totals.estimated


def test_a_call_at_a_time_adds_up_as_the_whole() -> None:
    whole = Totals.of(RECORDS)
    step = Totals()
    for call in ([RECORDS[0]], [RECORDS[1]], RECORDS[2:4], [RECORDS[4]], [RECORDS[5]]):
        step.add(call)
    assert step == whole


def write(job_dir: Path, records: list[dict[str, Any]]) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    with TranscriptWriter(job_dir / TRANSCRIPT_NAME) as writer:
        for item in records:
            writer.write(item)


def test_the_summary_shows_the_totals(tmp_path: Path) -> None:
    write(tmp_path, RECORDS)
    (row,) = summarize(tmp_path)
    totals = Totals.of(RECORDS)
    assert (row.calls, row.errors) == (totals.calls, totals.errors)
    assert (row.prompt_tokens, row.completion_tokens) == (33, 6)
    assert row.cost_usd == round(totals.cost_usd or 0, 8)
    assert row.latency_p50_s == 1.0


def test_job_facts_round_trip_and_a_bad_file_is_passed_over(tmp_path: Path) -> None:
    facts = JobFacts(3, ["system=concise"], None, "capitals", ["france", "japan"])
    write_job_facts(tmp_path, facts)
    assert read_job_facts(tmp_path) == facts
    (tmp_path / JOB_FILE).write_text("{not json")
    assert read_job_facts(tmp_path) is None
    assert read_job_facts(tmp_path / "nowhere") is None


def test_transcripts_are_found_in_natural_order(tmp_path: Path) -> None:
    for name in ("10", "2", "1/sub", "b", "a"):
        write(tmp_path / name, [record("a", 1)])
    found = [p.parent.relative_to(tmp_path).as_posix() for p in find_transcripts(tmp_path)]
    assert found == ["1/sub", "2", "10", "a", "b"]
    assert find_transcripts(tmp_path / "2" / TRANSCRIPT_NAME) == [tmp_path / "2" / TRANSCRIPT_NAME]
    assert find_transcripts(tmp_path / "nowhere") == []
