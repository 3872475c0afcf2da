"""``report.html``: the grid of answers per configuration, its totals, and the page in a browser."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from runner.analysis.report import REPORT_NAME, write_report
from runner.base.jobfile import JobFacts, read_job_facts, write_job_facts
from runner.base.record import TokenUsage, TranscriptRecord
from runner.base.schema import QuestionItem, QuestionSet
from runner.base.transcript import TRANSCRIPT_NAME, TranscriptWriter
from runner.core.questions import load_conversations

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# (conversation, turn) -> (question, expected)
QUESTIONS = {
    ("capital", 1): ("What is the capital of France?", "Paris"),
    ("math", 1): ("What is 2 + 2?", "4"),
    ("math", 2): ("Double it.", "8"),
}
# job -> (system, temperature)
JOBS = {0: ("helpful", 0), 1: ("helpful", 0.7), 2: ("concise", 0), 3: ("concise", 0.7)}
# job -> scores of the rows above, in order (None: the call failed)
SCORES = {
    0: [1.0, 1.0, 1.0],
    1: [0.0, 1.0, 0.5],
    2: [1.0, 0.0, None],
    3: [1.0, 1.0, 0.0],
}
BOLD = "**Paris** is the capital.\n\nIt lies on the *Seine*."
SCRIPT = "<script>document.title = 'pwned'</script> Paris"
SCRIPT_MULTILINE = (
    "Paris.\n\n<script>document.title = 'pwned'</script>\n\n<img src=x onerror=alert(1)>"
)
UNICODE = "Париж 🇫🇷 — 巴黎, «la Ville Lumière»"
ANSWERS = {
    (0, "capital", 1): BOLD,
    (1, "capital", 1): SCRIPT,
    (3, "capital", 1): UNICODE,
    (3, "math", 2): SCRIPT_MULTILINE,
}


def make_record(**changes: Any) -> dict[str, Any]:
    """A record as the runner writes it (``TranscriptRecord.to_dict()``), with ``changes``."""
    record = TranscriptRecord(
        record_id="r0",
        job=0,
        overrides=[],
        created_at="2026-11-20T10:31:02.000+00:00",
        model="echo",
        base_url=None,
        offline=True,
        system="helpful",
        system_message="You are helpful.",
        params={"temperature": 0.0},
        question_set="demo",
        conversation_id="capital",
        turn=1,
        question="What is the capital of France?",
        answer="Paris",
        expected="Paris",
        messages=[],
        dropped_messages=0,
        usage=TokenUsage(prompt_tokens=20, completion_tokens=5, total_tokens=25),
        estimated_prompt_tokens=20,
        token_count_method="o200k_base",
        cost_usd=0.0000125,
        latency_s=0.25,
        ttft_s=0.1,
        attempts=1,
        cache_hit=False,
        finish_reason="stop",
        response_id="chatcmpl-1",
        served_model="echo",
        system_fingerprint=None,
        score=1.0,
    ).to_dict()
    record.update(changes)
    return record


def write_job(job_dir: Path, records: list[dict[str, Any]], overrides: list[str]) -> None:
    job_dir.mkdir(parents=True)
    write_job_facts(job_dir, JobFacts(None, overrides, 0.0, "demo"))
    with TranscriptWriter(job_dir / TRANSCRIPT_NAME) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Four jobs (system × temperature), three rows; job 2 fails on the last row."""
    root = tmp_path / "sweep"
    for job, (system, temperature) in JOBS.items():
        overrides = [f"system={system}", f"sampling.temperature={temperature}", "questions=demo"]
        records = []
        for i, ((conversation, turn), (question, expected)) in enumerate(QUESTIONS.items()):
            score = SCORES[job][i]
            record = make_record(
                record_id=f"{job}-{conversation}-{turn}",
                job=job,
                overrides=overrides,
                system=system,
                params={"temperature": temperature},
                conversation_id=conversation,
                turn=turn,
                question=question,
                expected=expected,
                answer=ANSWERS.get(
                    (job, conversation, turn), f"answer {job}/{conversation}/{turn}"
                ),
                usage={"prompt_tokens": 100 + job, "completion_tokens": 10 + i},
                cost_usd=0.000123 if job == 1 else 0.0,
                latency_s=1.5 if job == 3 else 0.25,
                score=score,
            )
            if score is None:
                record.update(
                    answer=None,
                    usage={"prompt_tokens": None, "completion_tokens": None},
                    cost_usd=None,
                    finish_reason=None,
                    error={"type": "RateLimitError", "message": "slow down: 429", "status": 429},
                )
            records.append(record)
        write_job(root / str(job), records, overrides)
    return root


# --- a small DOM from the standard library's HTML parser ------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.classes)]

    def find(self, tag: str, cls: str | None = None) -> Node:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag} class={cls}>"
        return found[0]

    def by_id(self, ident: str) -> Node:
        return next(n for n in self.iter() if n.attrs.get("id") == ident)

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        tags = [n.tag for n in self.stack]
        if tag in tags:
            del self.stack[len(tags) - 1 - tags[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(path: Path) -> Node:
    builder = TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    return builder.root


def parse_meta(path: Path) -> list[str]:
    """The lines under the page's title."""
    doc = parse(path / REPORT_NAME)
    return [" ".join(p.text().split()) for p in doc.find("header").find_all("p", "meta")]


def grid_parts(doc: Node) -> tuple[list[str], list[Node]]:
    """Header texts of the grid's configuration columns, and its body rows."""
    grid = doc.by_id("grid")
    heads = [" ".join(th.text().split()) for th in grid.find("thead").find_all("th")]
    return heads[1:], grid.find("tbody").find_all("tr")


def cells(row: Node) -> list[Node]:
    return row.find_all("td")


# --- the page's content ----------------------------------------------------------------------


def test_writes_report_html_into_the_sweep_dir(sweep: Path) -> None:
    out = write_report(sweep)
    assert out == sweep / REPORT_NAME
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_one_column_per_job_labelled_by_its_swept_values(sweep: Path) -> None:
    heads, _ = grid_parts(parse(write_report(sweep)))
    assert heads == [
        f"#{job}{' ★' if job == 0 else ''} system={system} · sampling.temperature={temperature}"
        for job, (system, temperature) in JOBS.items()
    ]


def test_one_row_per_conversation_turn_with_question_and_expected(sweep: Path) -> None:
    _, rows = grid_parts(parse(write_report(sweep)))
    assert len(rows) == len(QUESTIONS)
    for row, ((conversation, turn), (question, expected)) in zip(
        rows, QUESTIONS.items(), strict=True
    ):
        header = row.find("th")
        assert f"demo / {conversation} · turn {turn}" in header.text()
        assert header.find("div", "q").text() == question
        assert header.find("div", "expected").text() == f"expected: {expected}"
        assert len(cells(row)) == len(JOBS)


def test_cells_show_score_tokens_latency_and_cost(sweep: Path) -> None:
    _, rows = grid_parts(parse(write_report(sweep)))
    for i, row in enumerate(rows):
        for job, cell in enumerate(cells(row)):
            score = SCORES[job][i]
            assert cell.attrs.get("data-score") == (None if score is None else str(score))
            if score is None:
                continue
            metrics = cell.find("div", "metrics").text()
            assert metrics.startswith(f"{score:g}")
            assert f"{100 + job} → {10 + i} tok" in metrics
            assert ("1.50 s" if job == 3 else "250 ms") in metrics
            assert ("$0.000123" if job == 1 else "$0") in metrics


def test_error_records_are_marked_with_type_and_message(sweep: Path) -> None:
    _, rows = grid_parts(parse(write_report(sweep)))
    assert [r.attrs["data-error"] for r in rows] == ["0", "0", "1"]
    failed = cells(rows[2])[2]
    assert "is-error" in failed.classes
    error = failed.find("div", "err")
    assert error.find("span", "badge").text() == "error"
    assert error.find("span", "type").text() == "RateLimitError (429)"
    assert error.find("div", "message").text() == "slow down: 429"
    assert not failed.find_all("div", "answer")
    assert "no price" in failed.find("div", "metrics").text()


def totals(doc: Node) -> tuple[list[str], list[list[str]], list[Node]]:
    """The totals table's header texts, its rows' cell texts, and its rows."""
    table = doc.by_id("totals")
    heads = [" ".join(th.text().split()) for th in table.find("thead").find_all("th")]
    body = table.find("tbody").find_all("tr")
    rows = [[" ".join(td.text().split()) for td in tr.find_all("td")] for tr in body]
    return heads, rows, body


TOTALS_HEADS = ["calls", "errors", "mean score", "prompt tok", "completion tok", "cost"]


def test_totals_table_has_one_row_per_job(sweep: Path) -> None:
    heads, rows, body = totals(parse(write_report(sweep)))
    assert heads == [
        "grid",
        "#",
        "system",
        "sampling.temperature",
        *TOTALS_HEADS,
        "latency p50",
        "p95",
    ]
    assert [r[1] for r in rows] == ["#0 ★ best", "#1", "#2", "#3"]
    assert rows[1][2:] == [
        "helpful",
        "0.7",
        "3",
        "0",
        "0.5 0–1",  # a bootstrap interval: the scores are graded
        "303",
        "33",
        "$0.000369",
        "250 ms",
        "250 ms",
    ]
    assert rows[3][6] == "0.667 0.208–0.939"  # Wilson: 2 of 3
    assert rows[2][6] == "0.333 0.061–0.792"  # the failed call scores 0
    assert rows[2][4:6] == ["3", "1"]
    assert "bad" in body[2].find_all("td")[5].classes
    # what each column sorts by: numbers as numbers, in the cells' data-value
    assert [tr.find_all("td")[9].attrs["data-value"] for tr in body] == [
        "0.0",
        "0.000369",
        "0.0",
        "0.0",
    ]
    assert [tr.find_all("td")[3].attrs["data-value"] for tr in body] == ["0.0", "0.7", "0.0", "0.7"]


def test_answers_are_rendered_as_markdown(sweep: Path) -> None:
    _, rows = grid_parts(parse(write_report(sweep)))
    answer = cells(rows[0])[0].find("div", "answer")
    assert answer.find("strong").text() == "Paris"
    assert answer.find("em").text() == "Seine"
    assert len(answer.find_all("p")) == 2
    plain = cells(rows[1])[0].find("div", "answer")
    assert plain.text() == "answer 0/math/1"


@pytest.mark.parametrize(
    ("row", "job", "visible"),
    [
        (0, 1, "<script>document.title = 'pwned'</script> Paris"),
        (2, 3, "<script>document.title = 'pwned'</script>"),
    ],
    ids=["inline", "block"],
)
def test_html_in_answers_is_shown_as_text(sweep: Path, row: int, job: int, visible: str) -> None:
    out = write_report(sweep)
    doc = parse(out)
    _, rows = grid_parts(doc)
    answer = cells(rows[row])[job].find("div", "answer")
    assert visible in answer.text()
    assert not answer.find_all("script")
    assert not answer.find_all("img")
    # the page's own script is the only one, at the end of the body
    assert len(doc.find_all("script")) == 1
    assert "&lt;script&gt;document.title" in out.read_text(encoding="utf-8")


def test_markdown_images_and_links_load_nothing(tmp_path: Path) -> None:
    answer = "See ![chart](https://example.com/chart.png) and [docs](javascript:alert(1)).\n\nok"
    write_job(tmp_path / "run", [make_record(answer=answer)], ["model=echo"])
    doc = parse(write_report(tmp_path / "run"))
    assert not doc.find_all("img")
    assert all("javascript:" not in (a.attrs.get("href") or "") for a in doc.find_all("a"))


def test_the_page_loads_nothing_from_the_network(sweep: Path) -> None:
    out = write_report(sweep)
    text = out.read_text(encoding="utf-8")
    doc = parse(out)
    assert "http://" not in text
    assert "https://" not in text
    assert not doc.find_all("link")
    assert not doc.find_all("img")
    assert not [n for n in doc.iter() if "src" in n.attrs or "href" in n.attrs]
    (script,) = doc.find_all("script")
    assert "src" not in script.attrs
    csp = next(
        m.attrs["content"] or ""
        for m in doc.find_all("meta")
        if m.attrs.get("http-equiv") == "Content-Security-Policy"
    )
    assert csp.startswith("default-src 'none';")
    # The policy admits exactly the inline script and style, by hash, so both run.
    for tag in ("script", "style"):
        content = doc.find(tag).text()
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        assert re.search(rf"{tag}-src 'sha256-{re.escape(digest)}'", csp)


def test_unicode_answers_and_questions_survive(tmp_path: Path) -> None:
    record = make_record(question="Quelle est la capitale ? 🗼", answer=UNICODE, expected="Paris")
    write_job(tmp_path / "run", [record], ["model=echo"])
    doc = parse(write_report(tmp_path / "run"))
    _, rows = grid_parts(doc)
    assert rows[0].find("div", "q").text() == "Quelle est la capitale ? 🗼"
    assert cells(rows[0])[0].find("div", "answer").text() == UNICODE


def test_a_single_run_gets_one_column_labelled_by_its_model(tmp_path: Path) -> None:
    records = [
        make_record(job=None, model="gpt-6-luna", conversation_id=f"q{n}", question=f"Q{n}?")
        for n in range(3)
    ]
    write_job(tmp_path / "run", records, ["model=gpt-6-luna", "system=concise"])
    heads, rows = grid_parts(parse(write_report(tmp_path / "run")))
    assert heads == ["gpt-6-luna"]
    assert len(rows) == 3
    assert "Overrides: model=gpt-6-luna system=concise" in " ".join(parse_meta(tmp_path / "run"))


def test_records_missing_fields_still_render(tmp_path: Path) -> None:
    records = [
        {"question": "Bare?", "answer": "bare"},
        {"conversation_id": "c", "turn": 2, "answer": None, "error": "boom", "usage": None},
        {"conversation_id": "c", "turn": 3, "latency_s": None},
    ]
    write_job(tmp_path / "run", records, [])
    heads, rows = grid_parts(parse(write_report(tmp_path / "run")))
    assert heads == ["?"]
    assert len(rows) == 3
    assert cells(rows[0])[0].find("div", "answer").text() == "bare"
    assert cells(rows[1])[0].find("span", "type").text() == "error"
    assert cells(rows[1])[0].find("div", "message").text() == "boom"
    assert "–" in cells(rows[2])[0].find("div", "metrics").text()


def test_rows_keep_the_question_sets_order_with_turns_together(tmp_path: Path) -> None:
    # Conversations in the order they were asked (ids that sort otherwise), each one's turns
    # together and by number (10 after 9), though concurrency finished the turns out of order.
    keys = [
        ("zeta", 1),
        ("alpha", 9),
        ("q-1f00c0ffee", 1),
        ("alpha", 10),
        ("zeta", 2),
        ("alpha", 1),
    ]
    records = [
        make_record(conversation_id=c, turn=t, question=f"{c}/{t}", record_id=f"{c}{t}")
        for c, t in keys
    ]
    write_job(tmp_path / "s" / "0", records, ["system=a"])
    # a conversation only the second job has comes after the first job's
    later = [make_record(conversation_id="c2", question="c2/1"), *records]
    write_job(tmp_path / "s" / "1", later, ["system=b"])
    _, rows = grid_parts(parse(write_report(tmp_path / "s")))
    assert [r.find("div", "q").text() for r in rows] == [
        "zeta/1",
        "zeta/2",
        "alpha/1",
        "alpha/9",
        "alpha/10",
        "q-1f00c0ffee/1",
        "c2/1",
    ]
    assert [r.attrs["data-order"] for r in rows] == ["0", "1", "2", "3", "4", "5", "6"]
    # the first turn shown of each conversation opens its block; the others continue it
    assert [r.classes for r in rows] == [
        ["conv-start"],
        ["conv-turn"],
        ["conv-start"],
        ["conv-turn"],
        ["conv-turn"],
        ["conv-start"],
        ["conv-start"],
    ]
    wheres = [" ".join(r.find("div", "where").text().split()) for r in rows]
    assert wheres[:4] == [
        "demo / zeta · turn 1 of 2",
        "demo / zeta · turn 2 of 2",
        "demo / alpha · turn 1 of 10",
        "demo / alpha · turn 9 of 10",
    ]
    assert wheres[5] == "demo / q-1f00c0ffee · turn 1"


def write_facts(job_dir: Path, question_set: str, conversations: list[str]) -> None:
    """The ``job.json`` a job writes as it starts, as far as the report reads it."""
    write_job_facts(job_dir, JobFacts(None, [], 0.0, question_set, conversations))


def test_rows_follow_the_question_set_the_job_saved(tmp_path: Path) -> None:
    # the set asks beta, then alpha (two turns), then a question without an id; the records
    # came back in another order
    items = [
        {"id": "beta", "question": "b?"},
        {"id": "alpha", "turns": [{"question": "a1?"}, {"question": "a2?"}]},
        {"question": "no id?"},
    ]
    derived = load_conversations(QuestionSet(name="demo", items=[QuestionItem(**items[2])]))
    order = [(derived[0].id, 1), ("alpha", 2), ("beta", 1), ("alpha", 1)]
    records = [make_record(conversation_id=c, turn=t, question=f"{c}/{t}") for c, t in order]
    write_job(tmp_path / "run", records, [])
    write_facts(tmp_path / "run", "demo", ["beta", "alpha", derived[0].id])
    _, rows = grid_parts(parse(write_report(tmp_path / "run")))
    assert [r.find("div", "q").text() for r in rows] == [
        "beta/1",
        "alpha/1",
        "alpha/2",
        f"{derived[0].id}/1",
    ]


def test_a_job_writes_its_question_set_order_for_the_report(tmp_path: Path) -> None:
    from runner.cli.experiment import run_job

    run_job(["questions=math_chat", "failed_score=0.25", "cache.enabled=false"], tmp_path)
    facts = read_job_facts(tmp_path)
    assert facts is not None
    assert (facts.question_set, facts.failed_score) == ("math_chat", 0.25)
    assert facts.conversations == [
        "times_then_add",
        "divide_square_subtract",
        "add_then_triple",
        "nine_squared",
    ]
    assert facts.overrides == ["questions=math_chat", "failed_score=0.25"]


def test_rows_follow_the_question_file(tmp_path: Path) -> None:
    lines = [{"id": i, "question": f"{i}?"} for i in ("zeta", "alpha", "q-1f00c0ffee", "c2")]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    order = ["c2", "alpha", "zeta", "stale", "q-1f00c0ffee"]  # "stale": no longer in the file
    records = [make_record(conversation_id=c, question=f"{c}?") for c in order]
    write_job(tmp_path / "run", records, [])
    asked = load_conversations(QuestionSet(name="demo", path=str(path)))
    write_facts(tmp_path / "run", "demo", [c.id for c in asked])
    _, rows = grid_parts(parse(write_report(tmp_path / "run")))
    assert [r.find("div", "q").text() for r in rows] == [
        "zeta?",
        "alpha?",
        "q-1f00c0ffee?",
        "c2?",
        "stale?",
    ]
    # a job dir without its job.json: the order the transcripts give
    (tmp_path / "run" / "job.json").unlink()
    _, rows = grid_parts(parse(write_report(tmp_path / "run")))
    assert [r.find("div", "q").text() for r in rows] == [f"{c}?" for c in order]


def test_a_rerun_call_shows_its_last_record(tmp_path: Path) -> None:
    failed = make_record(answer=None, error={"type": "APITimeoutError", "message": "timed out"})
    write_job(tmp_path / "run", [failed, make_record(answer="Paris, again")], ["model=echo"])
    _, rows = grid_parts(parse(write_report(tmp_path / "run")))
    (cell,) = cells(rows[0])
    assert cell.find("div", "answer").text() == "Paris, again"
    assert "2 records, last shown" in cell.text()
    assert rows[0].attrs["data-error"] == "0"


def test_a_job_without_a_row_shows_a_gap(tmp_path: Path) -> None:
    write_job(tmp_path / "s" / "0", [make_record()], ["system=a"])
    write_job(tmp_path / "s" / "1", [make_record(conversation_id="other")], ["system=b"])
    _, rows = grid_parts(parse(write_report(tmp_path / "s")))
    assert [[" ".join(c.classes) for c in cells(r)] for r in rows] == [
        ["cell", "cell missing"],
        ["cell missing", "cell"],
    ]


def many_jobs(root: Path, count: int) -> Path:
    for job in range(count):
        overrides = [f"sampling.seed={job}", "model=echo"]
        records = [
            make_record(job=job, conversation_id=f"c{n}", question=f"Question {n}?", score=n % 2)
            for n in range(5)
        ]
        write_job(root / str(job), records, overrides)
    return root


# 12 jobs (system × temperature) answering 20 questions: how many each gets right, of 20.
# Jobs 5 and 9 tie on the mean score; 9 is cheaper, so it is best. The best four: 9, 5, 11, 10.
WIDE_RIGHT = [10, 12, 8, 14, 9, 18, 11, 13, 7, 18, 15, 16]
WIDE_SYSTEMS = ["helpful", "concise", "expert"]
WIDE_TEMPERATURES = [0, 0.3, 0.7, 1]
# conversation ids in the question set's order (alphabetical order differs); alpha has 2 turns
WIDE_IDS = ["zeta", "alpha", "alpha", "q-1f00c0ffee", "c10", "c2"] + [
    f"item-{n}" for n in range(14)
]
WIDE_LONG = "\n".join(f"Line {n}: a long answer goes on." for n in range(1, 31)) + "\nThe end."


def wide_sweep(root: Path) -> Path:
    for job, right in enumerate(WIDE_RIGHT):
        system = WIDE_SYSTEMS[job // 4]
        temperature = WIDE_TEMPERATURES[job % 4]
        overrides = [f"system={system}", f"sampling.temperature={temperature}", "questions=demo"]
        records = []
        for i, conversation in enumerate(WIDE_IDS):
            turn = 2 if i == 2 else 1
            records.append(
                make_record(
                    record_id=f"{job}-{i}",
                    job=job,
                    overrides=overrides,
                    system=system,
                    params={"temperature": temperature},
                    conversation_id=conversation,
                    turn=turn,
                    question=f"Question {i}: what about {conversation}, turn {turn}?",
                    expected=f"answer {i}",
                    answer=WIDE_LONG if i == 0 else f"Answer {i} from job {job}.",
                    usage={"prompt_tokens": 100 + i, "completion_tokens": 20 + job},
                    cost_usd=(12 - job) * 1e-5,
                    latency_s=round(0.2 + 0.05 * job + 0.01 * i, 3),
                    score=1.0 if (i + job) % 20 < right else 0.0,
                )
            )
        write_job(root / str(job), records, overrides)
    return root


def test_forty_jobs_are_forty_columns_in_natural_order(tmp_path: Path) -> None:
    doc = parse(write_report(many_jobs(tmp_path / "sweep", 40)))
    heads, rows = grid_parts(doc)
    # every job scores the same: the cost ties too, so the first job is best
    assert heads == [f"#{job}{' ★' if job == 0 else ''} sampling.seed={job}" for job in range(40)]
    assert all(len(cells(r)) == 40 for r in rows)
    # the best four are the columns shown; the others are on the page for the picker
    shown = [
        th.attrs["data-col"] for th in doc.find_all("th", "config") if "hidden" not in th.attrs
    ]
    assert shown == ["0", "1", "2", "3"]
    assert all(("hidden" in c.attrs) == (i >= 4) for r in rows for i, c in enumerate(cells(r)))


# --- the best configuration, the plots and the columns of the grid --------------------------


def rule(doc: Node) -> str:
    return " ".join(doc.find("p", "rule").text().split())


def test_the_best_has_the_highest_score_and_at_equal_scores_the_lower_cost(
    tmp_path: Path,
) -> None:
    # (mean score, cost): jobs 1 to 3 tie on the score; job 3's price is unknown
    for job, (score, cost) in enumerate([(0.5, 0.001), (1.0, 0.003), (1.0, 0.002), (1.0, None)]):
        record = make_record(job=job, score=score, cost_usd=cost)
        write_job(tmp_path / "s" / str(job), [record], [f"system=s{job}"])
    doc = parse(write_report(tmp_path / "s"))
    _, rows, body = totals(doc)
    assert ["best" in tr.classes for tr in body] == [False, False, True, False]
    assert [r[1] for r in rows] == ["#0", "#1", "#2 ★ best", "#3"]
    assert rule(doc).startswith("★ best: the highest mean score; at equal scores, the lower cost.")
    heads, _ = grid_parts(doc)
    assert heads[2] == "#2 ★ system=s2"


def test_no_best_without_scores(tmp_path: Path) -> None:
    for job in range(2):
        write_job(tmp_path / "s" / str(job), [make_record(job=job, score=None)], [f"system={job}"])
    doc = parse(write_report(tmp_path / "s"))
    assert not doc.find_all("tr", "best")
    assert not doc.find_all("g", "best")
    assert rule(doc).startswith("Click a header to sort")


def points(doc: Node, chart: str) -> list[Node]:
    return doc.by_id(f"chart-{chart}").find_all("g", "point")


def centre(point: Node) -> tuple[float, float]:
    dot = point.find("circle", "dot")
    return float(dot.attrs["cx"] or 0), float(dot.attrs["cy"] or 0)


def test_score_is_plotted_against_cost_and_latency(sweep: Path) -> None:
    doc = parse(write_report(sweep))
    for chart, x_label in [("cost", "cost (USD)"), ("latency", "latency p50 (s)")]:
        figure = doc.by_id(f"chart-{chart}")
        svg = figure.find("svg")
        assert svg.find("text", "x-label").text() == x_label
        assert svg.find("text", "y-label").text() == "mean score"
        found = points(doc, chart)
        assert len(found) == len(JOBS)
        titles = [p.find("title").text() for p in found]
        # the best is drawn last, over the others
        assert [t.split()[0] for t in titles] == ["#1", "#2", "#3", "#0"]
        assert [("best" in p.classes) for p in found] == [False, False, False, True]
        assert titles[0] == (
            "#1 system=helpful · sampling.temperature=0.7\n"
            "mean score 0.5 · cost $0.000369 · latency p50 250 ms"
        )
        assert "★ best" in found[-1].text()
    # higher scores are higher up (smaller y): 1, 0.667, 0.5, 0.333 (the failed call scores
    # 0); job 1 cost the most (rightmost)
    by_job = {p.find("title").text().split()[0]: centre(p) for p in points(doc, "cost")}
    assert by_job["#0"][1] < by_job["#3"][1] < by_job["#1"][1] < by_job["#2"][1]
    assert by_job["#1"][0] > by_job["#0"][0] == by_job["#2"][0] == by_job["#3"][0]
    ticks = [t.text() for t in doc.by_id("chart-cost").find("g", "axis").find_all("text")]
    assert ticks == [
        *["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"],
        *["$0.0000", "$0.0001", "$0.0002", "$0.0003", "$0.0004"],
    ]
    # job 3 answered in 1.5 s, the others in 250 ms
    by_job = {p.find("title").text().split()[0]: centre(p) for p in points(doc, "latency")}
    assert by_job["#3"][0] > by_job["#0"][0] == by_job["#1"][0]


def test_the_cost_plot_leaves_out_jobs_without_a_price(tmp_path: Path) -> None:
    write_job(tmp_path / "s" / "0", [make_record(job=0, cost_usd=0.002)], ["model=a"])
    write_job(tmp_path / "s" / "1", [make_record(job=1, cost_usd=None)], ["model=b"])
    doc = parse(write_report(tmp_path / "s"))
    assert len(points(doc, "cost")) == 1
    note = doc.by_id("chart-cost").find("p", "chart-note").text()
    assert note == "1 of 2 configurations without a score or a price: not shown"
    assert len(points(doc, "latency")) == 2
    assert not doc.by_id("chart-latency").find_all("p", "chart-note")


def test_a_single_run_has_no_plots(tmp_path: Path) -> None:
    write_job(tmp_path / "run", [make_record()], ["model=echo"])
    doc = parse(write_report(tmp_path / "run"))
    assert not doc.find_all("svg")
    assert not doc.find_all("input", "pick")


def test_the_plot_with_every_cost_alike_has_one_tick(tmp_path: Path) -> None:
    for job in range(2):
        write_job(tmp_path / "s" / str(job), [make_record(job=job, cost_usd=0.0)], [f"m={job}"])
    doc = parse(write_report(tmp_path / "s"))
    ticks = [t.text() for t in doc.by_id("chart-cost").find("g", "axis").find_all("text")]
    assert ticks[-2:] == ["1.0", "$0"]
    assert {centre(p)[0] for p in points(doc, "cost")} == {(58 + 426) / 2}


def test_more_than_eight_jobs_show_the_best_four_as_columns(tmp_path: Path) -> None:
    doc = parse(write_report(wide_sweep(tmp_path / "sweep")))
    picks = doc.find_all("input", "pick")
    assert [p.attrs["data-col"] for p in picks if "checked" in p.attrs] == ["5", "9", "10", "11"]
    heads = doc.by_id("grid").find("thead").find_all("th", "config")
    assert [th.attrs["data-col"] for th in heads if "hidden" not in th.attrs] == [
        "5",
        "9",
        "10",
        "11",
    ]
    assert "--cols: 4;" in doc.find("style").text()
    assert doc.by_id("picked").text() == "4"
    assert doc.by_id("pick-best").text() == "best 4"
    _, rows = grid_parts(doc)
    assert len(rows) == 20
    assert all(len(cells(r)) == 12 for r in rows)


def test_eight_jobs_are_all_columns(tmp_path: Path) -> None:
    doc = parse(write_report(many_jobs(tmp_path / "sweep", 8)))
    assert all("hidden" not in th.attrs for th in doc.find_all("th", "config"))
    assert len([p for p in doc.find_all("input", "pick") if "checked" in p.attrs]) == 8
    assert "--cols: 8;" in doc.find("style").text()


# --- what the user typed, and what the records hold ------------------------------------------


def test_override_values_show_without_hydras_quoting(tmp_path: Path) -> None:
    values = {
        "'Be brief, please'": "Be brief, please",
        r"Be\ brief\,\ ok": "Be brief, ok",
        r'"say \"hi\""': 'say "hi"',
        r"'it\'s'": "it's",
    }
    for job, raw in enumerate(values):
        overrides = [f"system.message={raw}", "questions=demo"]
        write_job(tmp_path / "s" / str(job), [make_record(job=job)], overrides)
    doc = parse(write_report(tmp_path / "s"))
    heads, _ = grid_parts(doc)
    assert [h.partition(" ")[2].lstrip("★ ") for h in heads] == [
        f"system.message={v}" for v in values.values()
    ]
    _, rows, _ = totals(doc)
    assert [r[2] for r in rows] == list(values.values())
    assert "Common to all jobs: questions=demo" in parse_meta(tmp_path / "s")
    (tmp_path / "s" / REPORT_NAME).unlink()
    write_job(tmp_path / "run", [make_record()], ["system.message='Be brief, please'"])
    write_report(tmp_path / "run")
    assert "Overrides: system.message=Be brief, please" in parse_meta(tmp_path / "run")


def sample_records(scores: list[float | None], **changes: Any) -> list[dict[str, Any]]:
    return [
        make_record(
            sample=i,
            record_id=f"s{i}",
            answer=None if score is None else f"answer {i}",
            score=score,
            error=None if score is not None else {"type": "APITimeoutError", "message": "slow"},
            **changes,
        )
        for i, score in enumerate(scores)
    ]


def test_samples_of_a_question_share_a_cell(tmp_path: Path) -> None:
    write_job(tmp_path / "run", sample_records([1.0, 0.0, 1.0, None]), ["repeat=4"])
    _, rows = grid_parts(parse(write_report(tmp_path / "run")))
    assert len(rows) == 1
    (cell,) = cells(rows[0])
    assert cell.attrs["data-score"] == str(2 / 3)
    assert " ".join(cell.find("div", "headline").text().split()) == (
        "0.667 4 samples: 2/4 correct, 1 failed"
    )
    samples = cell.find_all("details", "sample")
    assert [s.find("span", "label").text() for s in samples] == [f"sample {i}" for i in range(4)]
    assert [s.find("div", "answer").text() for s in samples[:3]] == [
        "answer 0",
        "answer 1",
        "answer 2",
    ]
    assert samples[3].find("span", "type").text() == "APITimeoutError"
    assert samples[3].find("span", "glance").text() == "APITimeoutError"
    # the cell's totals: every answer's tokens and cost
    assert "80 → 20 tok" in cell.find("div", "metrics").text()
    assert rows[0].attrs["data-error"] == "1"


def test_choices_of_one_call_share_a_cell(tmp_path: Path) -> None:
    records = [
        make_record(choice=c, sample=s, record_id=f"{s}{c}", answer=f"{s}/{c}", score=float(c))
        for s in range(2)
        for c in range(2)
    ]
    write_job(tmp_path / "run", records[:2], ["sampling.n=2"])
    write_job(tmp_path / "both", records, ["sampling.n=2", "repeat=2"])
    (cell,) = cells(grid_parts(parse(write_report(tmp_path / "run")))[1][0])
    assert cell.find("div", "headline").text().endswith("2 choices: 1/2 correct")
    labels = [s.find("span", "label").text() for s in cell.find_all("details", "sample")]
    assert labels == ["choice 0", "choice 1"]
    (cell,) = cells(grid_parts(parse(write_report(tmp_path / "both")))[1][0])
    assert (
        cell.find("div", "headline")
        .text()
        .endswith("4 answers (2 samples × 2 choices): 2/4 correct")
    )
    labels = [s.find("span", "label").text() for s in cell.find_all("details", "sample")]
    assert labels == [f"sample {s} · choice {c}" for s in range(2) for c in range(2)]


WEATHER_CALL = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
TOOL_MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21°C"},
]


def tool_records() -> list[dict[str, Any]]:
    """A turn of two calls: the model asks for the weather, then answers with it."""
    return [
        make_record(
            record_id="t0",
            conversation_id="weather",
            step=0,
            question="Weather in Paris?",
            answer="Let me check.",
            tool_calls=[{**WEATHER_CALL, "output": None, "error": None}],
            tool_results=[],
            messages=TOOL_MESSAGES[:2],
            usage={"prompt_tokens": 20, "completion_tokens": 5},
            latency_s=0.5,
            score=None,
            finish_reason="tool_calls",
        ),
        make_record(
            record_id="t1",
            conversation_id="weather",
            step=1,
            question="Weather in Paris?",
            answer="It is **sunny**.",
            tool_calls=[],
            tool_results=[{**WEATHER_CALL, "output": "sunny, 21°C", "error": None}],
            messages=TOOL_MESSAGES,
            usage={"prompt_tokens": 40, "completion_tokens": 6},
            latency_s=0.25,
            score=1.0,
        ),
    ]


def test_tool_steps_show_in_their_turn(tmp_path: Path) -> None:
    write_job(tmp_path / "run", tool_records(), ["tools=weather"])
    _, rows = grid_parts(parse(write_report(tmp_path / "run")))
    assert len(rows) == 1  # the two calls are one turn
    (cell,) = cells(rows[0])
    items = cell.find("ol", "tools").find_all("li")
    assert items[0].text().strip() == "Let me check."
    assert items[1].find("code", "call").text() == 'get_weather({"city": "Paris"})'
    assert items[1].find("div", "tool-out").text() == "sunny, 21°C"
    assert cell.find("div", "answer").find("strong").text() == "sunny"
    metrics = [span.text() for span in cell.find("div", "metrics").find_all("span")]
    assert metrics == ["1", "60 → 11 tok", "750 ms", "$0.000025", "2 calls"]


def test_a_call_the_tools_never_answered_says_so(tmp_path: Path) -> None:
    first, _ = tool_records()
    first.update(error={"type": "ToolRounds", "message": "raise tools.max_rounds"})
    write_job(tmp_path / "run", [first], ["tools=weather"])
    (cell,) = cells(grid_parts(parse(write_report(tmp_path / "run")))[1][0])
    (item,) = cell.find("ol", "tools").find_all("li")[1:]
    assert " ".join(item.text().split()) == 'get_weather({"city": "Paris"}) no result'
    assert cell.find("span", "type").text() == "ToolRounds"


def test_the_history_sent_is_shown_on_demand(tmp_path: Path) -> None:
    write_job(tmp_path / "run", tool_records(), ["tools=weather"])
    (cell,) = cells(grid_parts(parse(write_report(tmp_path / "run")))[1][0])
    history = cell.find("details", "history")
    assert "open" not in history.attrs
    assert history.find("summary").text() == "history sent · 4 messages"
    messages = history.find("ol", "messages").find_all("li")
    assert [m.find("span", "role").text() for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
    ]
    assert messages[1].find("div", "msg").text() == "Weather in Paris?"
    assert messages[2].find("code", "call").text() == 'get_weather({"city": "Paris"})'
    assert messages[3].find("div", "msg").text() == "sunny, 21°C"


def test_responses_input_items_show_in_the_history(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "rain"},
    ]
    write_job(tmp_path / "run", [make_record(api="responses", messages=messages)], [])
    (cell,) = cells(grid_parts(parse(write_report(tmp_path / "run")))[1][0])
    items = cell.find("ol", "messages").find_all("li")
    assert [(i.find("span", "role").text(), i.find_all("div", "msg")) for i in items] == [
        ("user", [Node("div", {"class": "msg"}, ["Weather?"])]),
        ("function_call", []),
        ("function_call_output", [Node("div", {"class": "msg"}, ["rain"])]),
    ]
    assert items[1].find("code", "call").text() == "get_weather({})"


LONG = "\n".join(f"Line {n} of a long answer." for n in range(1, 41))


def test_long_answers_and_questions_are_collapsed(tmp_path: Path) -> None:
    question = "Why? " * 200
    write_job(tmp_path / "run", [make_record(answer=LONG, question=question)], [])
    _, rows = grid_parts(parse(write_report(tmp_path / "run")))
    (cell,) = cells(rows[0])
    long = cell.find("details", "long")
    assert "open" not in long.attrs
    summary = long.find("summary")
    assert summary.find("span", "preview").text() == "\n".join(LONG.splitlines()[:3])
    assert summary.find("span", "more").text() == "show all · 40 lines"
    assert long.find("div", "answer").text().strip() == LONG  # the whole answer, on click
    head = rows[0].find("th").find("details", "long")
    assert head.find("span", "more").text() == "show all · 1,000 characters"
    assert head.find("div", "q").text() == question
    # a short answer shows whole
    write_job(tmp_path / "short", [make_record(answer="Line 1.\nLine 2.")], [])
    (cell,) = cells(grid_parts(parse(write_report(tmp_path / "short")))[1][0])
    assert not cell.find_all("details", "long")


def with_statistics(monkeypatch: pytest.MonkeyPatch, **values: list[Any]) -> None:
    """Give each job's summary row the named fields (as a newer summary has them)."""
    import runner.analysis.report

    def summarize(path: Path) -> list[Any]:
        rows = runner.analysis.report.summarize.__wrapped__(path)  # type: ignore[attr-defined]
        for i, row in enumerate(rows):
            for name, per_job in values.items():
                setattr(row, name, per_job[i])
        return rows

    summarize.__wrapped__ = runner.analysis.report.summarize  # type: ignore[attr-defined]
    monkeypatch.setattr(runner.analysis.report, "summarize", summarize)


def test_interval_and_pass_at_k_show_when_the_summary_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for job in range(2):
        write_job(tmp_path / "s" / str(job), sample_records([1.0, 0.0, 1.0], job=job), [f"m={job}"])
    with_statistics(
        monkeypatch,
        ci95_low=[0.2, None],
        ci95_high=[0.95, None],
        pass_at_1=[0.667, 0.5],
        pass_at_k=[1.0, 0.75],
        scored=[3, 3],
        failed=[0, 1],
    )
    doc = parse(write_report(tmp_path / "s"))
    heads, rows, body = totals(doc)
    assert heads[2:] == [
        "m",
        *TOTALS_HEADS[:3],
        "pass@1",
        "pass@3",
        "agreement",
        *TOTALS_HEADS[3:],
        "latency p50",
        "p95",
    ]
    assert rows[0][4:8] == ["0", "0.667 0.2–0.95", "0.667", "1"]
    assert rows[1][4:8] == ["0", "0.667", "0.5", "0.75"]
    assert body[1].find_all("td")[5].attrs["title"] == "scored: 3 · failed: 1"
    (best,) = [p for p in points(doc, "cost") if "best" in p.classes]
    whisker = best.find("line", "whisker")
    assert float(whisker.attrs["y1"] or 0) > centre(best)[1] > float(whisker.attrs["y2"] or 0)


def test_without_those_fields_the_columns_are_left_out(sweep: Path) -> None:
    heads, _, _ = totals(parse(write_report(sweep)))
    assert not [h for h in heads if h.startswith(("pass@", "agreement", "judge"))]


def test_one_answer_per_question_has_no_pass_at_k_column(
    sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_statistics(
        monkeypatch,
        pass_at_1=[1.0, 0.5, 0.5, 0.667],
        pass_at_k=[1.0, 0.5, 0.5, 0.667],
        agreement=[1.0, 0.25, None, 0.5],
        judge_cost_usd=[0.001, None, 0.002, 0.0],
    )
    heads, rows, _ = totals(parse(write_report(sweep)))
    # pass@1 and pass@k are the mean score when a question has one answer
    assert [h for h in heads if h.startswith(("pass@", "agreement", "judge"))] == [
        "agreement",
        "judge cost",
    ]
    assert [r[heads.index("agreement")] for r in rows] == ["1", "0.25", "–", "0.5"]
    assert [r[heads.index("judge cost")] for r in rows] == ["$0.001", "–", "$0.002", "$0"]


def test_a_refusal_is_shown_as_one(tmp_path: Path) -> None:
    record = make_record(answer=None, refusal="I can't help with that.", score=None)
    write_job(tmp_path / "run", [record], [])
    (cell,) = cells(grid_parts(parse(write_report(tmp_path / "run")))[1][0])
    assert cell.find("div", "refusal").text() == "refusal"
    assert cell.find("div", "answer").text() == "I can't help with that."


# --- the page in a browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; .ci/run installs it")  # CI must not skip the browser check
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Page:
    page: Any
    problems: list[str]

    def visible_rows(self) -> list[str]:
        """The visible rows' questions, top to bottom."""
        return self.page.locator("#grid tbody tr:visible .q").all_inner_texts()


@pytest.fixture
def open_report(browser: Any) -> Iterator[Any]:
    pages = []

    def open_(report: Path, size: tuple[int, int] = (1280, 900)) -> Page:
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on(
            "request",
            lambda r: None if r.url.startswith("file:") else problems.append(f"request {r.url}"),
        )
        page.goto(report.as_uri())
        page.wait_for_selector('body[data-ready="1"]', timeout=10_000)
        pages.append(page)
        return Page(page, problems)

    yield open_
    for page in pages:
        page.close()


def questions_by_score(job: int, reverse: bool = False) -> list[str]:
    """Row questions ordered by ``job``'s score; rows without a score last, ties stable."""
    rows = [(q, SCORES[job][i]) for i, (q, _) in enumerate(QUESTIONS.values())]
    # sorted() is stable with reverse=True too: ties keep the original order either way
    scored = sorted([r for r in rows if r[1] is not None], key=lambda r: r[1], reverse=reverse)
    return [q for q, _ in scored] + [q for q, s in rows if s is None]


@pytest.mark.slow
def test_browser_renders_the_grid_without_errors(sweep: Path, open_report: Any) -> None:
    view = open_report(write_report(sweep))
    page = view.page
    assert page.locator("#grid tbody tr:visible").count() == len(QUESTIONS)
    assert page.locator("#grid thead th.config:visible").count() == len(JOBS)
    assert page.locator("#grid tbody td.cell:visible").count() == len(QUESTIONS) * len(JOBS)
    assert page.locator("#grid strong").first.inner_text() == "Paris"
    assert page.title() == "Report: sweep"  # the answer's <script> did not run
    assert page.locator("#shown").inner_text() == "3 of 3 rows"
    assert view.problems == []


@pytest.mark.slow
def test_browser_sorts_by_a_configurations_score(sweep: Path, open_report: Any) -> None:
    view = open_report(write_report(sweep))
    original = [q for q, _ in QUESTIONS.values()]
    assert view.visible_rows() == original
    question = view.page.locator("#grid thead th.rowhead")
    assert question.get_attribute("aria-sort") == "ascending"
    question.click()
    assert view.visible_rows() == original[::-1]
    header = view.page.locator("#grid thead th.config").nth(1)  # job 1: scores 0, 1, 0.5
    header.click()
    assert view.visible_rows() == questions_by_score(1)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert view.visible_rows() == questions_by_score(1, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"
    view.page.locator("#grid thead th.config").nth(2).click()  # job 2: the failed row goes last
    assert view.visible_rows() == questions_by_score(2)
    assert view.visible_rows()[-1] == "Double it."
    assert header.get_attribute("aria-sort") == "none"
    question = view.page.locator("#grid thead th.rowhead")
    question.click()  # by row key, which is the order the page opened in
    assert view.visible_rows() == original
    assert question.get_attribute("aria-sort") == "ascending"
    question.click()
    assert view.visible_rows() == original[::-1]
    assert view.problems == []


@pytest.mark.slow
def test_browser_filters_by_text_and_errors(sweep: Path, open_report: Any) -> None:
    view = open_report(write_report(sweep))
    page = view.page
    page.locator("#filter").fill("capital")  # a question
    assert view.visible_rows() == ["What is the capital of France?"]
    page.locator("#filter").fill("巴黎")  # an answer
    assert view.visible_rows() == ["What is the capital of France?"]
    page.locator("#filter").fill("")
    assert len(view.visible_rows()) == 3
    page.locator("#errors-only").check()
    assert view.visible_rows() == ["Double it."]
    assert page.locator("#shown").inner_text() == "1 of 3 rows"
    page.locator("#filter").fill("capital")
    assert view.visible_rows() == []
    page.locator("#errors-only").uncheck()
    page.locator("#filter").fill("")
    assert len(view.visible_rows()) == 3
    assert view.problems == []


@pytest.mark.slow
def test_browser_forty_jobs_scroll_sideways_in_the_grid(tmp_path: Path, open_report: Any) -> None:
    view = open_report(write_report(many_jobs(tmp_path / "sweep", 40)))
    page = view.page
    assert page.locator("#grid thead th.config:visible").count() == 4
    page.locator("#pick-all").click()
    assert page.locator("#grid thead th.config:visible").count() == 40
    assert page.locator("#picked").inner_text() == "40"
    sizes = page.evaluate(
        """() => {
            const wrap = document.querySelector(".grid-wrap");
            return {scroll: wrap.scrollWidth, client: wrap.clientWidth,
                    page: document.documentElement.scrollWidth, viewport: window.innerWidth};
        }"""
    )
    assert sizes["scroll"] > 10 * sizes["client"] // 2  # 40 readable columns, not squeezed
    assert sizes["page"] <= sizes["viewport"]  # the page itself does not scroll sideways
    page.evaluate("() => { document.querySelector('.grid-wrap').scrollLeft = 5000; }")
    box = page.locator("#grid tbody th.rowhead").first.bounding_box()
    assert box is not None and box["x"] < 40  # the question column stays in view
    view.page.locator("#grid thead th.config").nth(39).click()
    assert view.visible_rows()[:2] == ["Question 0?", "Question 2?"]
    page.locator("#pick-best").click()
    assert page.locator("#grid thead th.config:visible").count() == 4
    assert page.locator("#grid tbody td.cell:visible").count() == 4 * 5
    assert view.problems == []


# A screenshot's colours, counted by the browser (a blank page has none to speak of).
COLOURS = """async ([png, box]) => {
    const image = new Image();
    image.src = "data:image/png;base64," + png;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = box.width;
    canvas.height = box.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, box.x, box.y, box.width, box.height, 0, 0, box.width, box.height);
    const data = context.getImageData(0, 0, box.width, box.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4) {
        seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    return seen.size;
}"""


def colours(browser: Any, png: bytes, box: dict[str, float]) -> int:
    """How many distinct colours the PNG has inside ``box`` (decoded in a blank page)."""
    page = browser.new_page()
    try:
        whole = {k: round(v) for k, v in box.items()}
        return int(page.evaluate(COLOURS, [base64.b64encode(png).decode("ascii"), whole]))
    finally:
        page.close()


@pytest.mark.slow
def test_browser_twelve_jobs_first_screen(tmp_path: Path, browser: Any, open_report: Any) -> None:
    """12 configurations × 20 questions at 1400×900: the table, the plots and the grid."""
    view = open_report(write_report(wide_sweep(tmp_path / "sweep")), (1400, 900))
    page = view.page
    # every configuration is a row of the totals, the best marked
    totals_rows = page.locator("#totals tbody tr")
    assert totals_rows.count() == 12
    assert page.locator("#totals tbody tr.best").count() == 1
    assert page.locator("#totals tbody tr.best td").nth(1).inner_text() == "#9 ★ best"
    for i in range(12):  # all on the first screen, none scrolled away inside the table
        box = totals_rows.nth(i).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900
    wrap = "document.querySelector('.totals-wrap')"
    assert page.evaluate(f"() => {wrap}.scrollHeight <= {wrap}.clientHeight")
    # the plots are on the first screen, the best point marked
    for chart in ("cost", "latency"):
        box = page.locator(f"#chart-{chart} svg").bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["y"] >= 0
        assert box["x"] + box["width"] <= 1400 and box["y"] + box["height"] <= 900
        assert page.locator(f"#chart-{chart} g.point").count() == 12
        title = page.locator(f"#chart-{chart} g.point.best title").text_content()
        assert title is not None and title.startswith("#9 ")
    # nothing is wider than the window
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1400
    # the grid shows the best four as columns, in job order
    heads = page.locator("#grid thead th.config:visible .job").all_inner_texts()
    assert heads == ["#5", "#9 ★", "#10", "#11"]
    assert page.locator("#grid tbody tr:visible").count() == 20
    # the questions in the question set's order, the turns of a conversation together
    wheres = page.locator("#grid tbody tr .where").all_inner_texts()
    assert [w.split(" / ")[1].split(" · ")[0] for w in wheres[:7]] == WIDE_IDS[:7]

    png = page.screenshot()
    assert len(png) > 20_000
    assert colours(browser, png, {"x": 0, "y": 0, "width": 1400, "height": 900}) > 200
    chart = page.locator("#chart-cost svg").bounding_box()
    assert chart is not None
    assert colours(browser, png, chart) > 20  # points, labels and axes, not a blank square
    (tmp_path / "first-screen.png").write_bytes(png)

    # sorting by a column of the totals reorders its rows: cost, low to high, then back
    def jobs() -> list[str]:
        return [
            t.split()[0] for t in page.locator("#totals tbody tr td:nth-child(2)").all_inner_texts()
        ]

    assert jobs() == [f"#{job}" for job in range(12)]
    cost = page.locator("#totals thead th", has_text="cost")
    cost.click()
    assert jobs() == [f"#{job}" for job in range(11, -1, -1)]
    assert cost.get_attribute("aria-sort") == "ascending"
    cost.click()
    assert jobs() == [f"#{job}" for job in range(12)]
    assert cost.get_attribute("aria-sort") == "descending"
    score = page.locator("#totals thead th", has_text="mean score")
    score.click()  # high to low first; the tie in job order
    assert jobs()[:4] == ["#5", "#9", "#11", "#10"]
    assert score.get_attribute("aria-sort") == "descending"
    assert cost.get_attribute("aria-sort") == "none"

    # ticking a configuration adds it as a column; unticking takes it away
    page.locator('#totals input.pick[data-col="0"]').check()
    page.locator('#totals input.pick[data-col="10"]').uncheck()
    heads = page.locator("#grid thead th.config:visible .job").all_inner_texts()
    assert heads == ["#0", "#5", "#9 ★", "#11"]
    assert page.locator("#grid tbody tr").first.locator("td.cell:visible").count() == 4

    # a long answer shows its first lines; a click shows all of it
    cell = page.locator("#grid tbody tr").first.locator("td.cell:visible").first
    cell.scroll_into_view_if_needed()
    end = cell.get_by_text("The end.")
    assert not end.is_visible()
    # cells off screen are not rendered (content-visibility): wait until this one is
    from playwright.sync_api import expect

    expect(cell.locator("details.long .preview")).to_contain_text("Line 1: a long")
    cell.locator("details.long > summary").click()
    assert end.is_visible()
    assert "Line 30: a long answer goes on." in cell.locator("div.answer").inner_text()
    assert not cell.locator("details.long .preview").is_visible()
    assert view.problems == []


@pytest.mark.slow
def test_browser_expands_samples_tools_and_history(tmp_path: Path, open_report: Any) -> None:
    write_job(tmp_path / "s" / "0", sample_records([1.0, 0.0, 1.0]), ["repeat=3"])
    write_job(tmp_path / "s" / "1", tool_records(), ["tools=weather"])
    view = open_report(write_report(tmp_path / "s"))
    page = view.page
    rows = page.locator("#grid tbody tr")
    assert rows.count() == 2
    samples = rows.nth(0).locator("td.cell").nth(0)
    assert samples.locator(".headline").inner_text() == "0.667 3 samples: 2/3 correct"
    second = samples.locator("details.sample").nth(1)
    assert not second.locator("div.answer").is_visible()
    second.locator("summary").click()
    assert second.locator("div.answer").inner_text() == "answer 1"
    tools = rows.nth(1).locator("td.cell").nth(1)
    assert tools.locator("code.call").first.inner_text() == 'get_weather({"city": "Paris"})'
    history = tools.locator("details.history")
    assert not history.locator("ol.messages").is_visible()
    history.locator("summary").click()
    assert history.locator("ol.messages > li").nth(3).inner_text() == "TOOL\nsunny, 21°C"
    assert view.problems == []
