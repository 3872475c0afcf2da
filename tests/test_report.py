"""``report.html``: the grid of answers per configuration, its totals, and the page in a browser."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.record import TokenUsage, TranscriptRecord
from runner.report import REPORT_NAME, write_report
from runner.transcript import TRANSCRIPT_NAME, TranscriptWriter

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
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
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
        f"#{job} system={system} · sampling.temperature={temperature}"
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


def test_totals_table_has_one_row_per_job(sweep: Path) -> None:
    doc = parse(write_report(sweep))
    table = doc.find("table", "totals")
    body = table.find("tbody").find_all("tr")
    rows = [[" ".join(td.text().split()) for td in tr.find_all("td")] for tr in body]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    assert rows[1][1] == "system=helpful · sampling.temperature=0.7"
    # calls, errors, prompt tok, completion tok, cost, p50, p95, mean score
    assert rows[1][2:] == ["3", "0", "303", "33", "$0.000369", "250 ms", "250 ms", "0.5"]
    assert rows[2][2:4] == ["3", "1"]
    assert "bad" in body[2].find_all("td")[3].classes


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


def test_rows_follow_question_set_conversation_and_turn(tmp_path: Path) -> None:
    # concurrent conversations finish in any order; turn 10 sorts after turn 9
    keys = [("b", "c2", 1), ("a", "c10", 1), ("a", "c2", 10), ("a", "c2", 9), ("a", "c2", 1)]
    records = [
        make_record(question_set=qs, conversation_id=c, turn=t, question=f"{qs}/{c}/{t}")
        for qs, c, t in keys
    ]
    write_job(tmp_path / "run", records, [])
    _, rows = grid_parts(parse(write_report(tmp_path / "run")))
    assert [r.find("div", "q").text() for r in rows] == [
        "a/c2/1",
        "a/c2/9",
        "a/c2/10",
        "a/c10/1",
        "b/c2/1",
    ]
    assert [r.attrs["data-order"] for r in rows] == ["0", "1", "2", "3", "4"]


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


def test_forty_jobs_are_forty_columns_in_natural_order(tmp_path: Path) -> None:
    heads, rows = grid_parts(parse(write_report(many_jobs(tmp_path / "sweep", 40))))
    assert heads == [f"#{job} sampling.seed={job}" for job in range(40)]
    assert all(len(cells(r)) == 40 for r in rows)


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

    def open_(report: Path) -> Page:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
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
    assert page.locator("#grid thead th.config").count() == 40
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
    assert view.problems == []
