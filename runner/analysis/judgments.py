"""Reading ``judgments.jsonl`` back: each judged record's latest verdict, the judge's costs, and
the merge that gives records their judge's scores (the summary, ``load_results``, re-judging).

A record is judged by ``record_id``; a record may have several judgments (another rubric,
scale or judge model: another ``judge_key``; or a judge asked again), of which readers take
the last that succeeded. No network or SDK imports here: loading results stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.base.errors import ResultsError
from runner.base.judgment import JUDGMENTS_NAME
from runner.base.transcript import read_records


def job_judgments(job_dir: str | Path) -> list[dict[str, Any]]:
    """Every judgment of a job dir, in file order (``[]`` when it has none). A torn last line
    is skipped with a warning; a corrupt line elsewhere raises ``ResultsError``."""
    path = Path(job_dir) / JUDGMENTS_NAME
    if not path.is_file():
        return []
    try:
        return [j for j in read_records(path) if isinstance(j, dict)]
    except ValueError as exc:
        raise ResultsError(f"{exc}; fix or remove that line") from None


def latest_judgments(
    job_dir: str | Path, judge_key: str | None = None
) -> dict[str, dict[str, Any]]:
    """Each judged record's judgment, by ``record_id``: the last one that succeeded, else the
    last one (of the judge ``judge_key`` only, when given)."""
    latest: dict[str, dict[str, Any]] = {}
    for judgment in job_judgments(job_dir):
        if judge_key is not None and judgment.get("judge_key") != judge_key:
            continue
        rid = judgment.get("record_id")
        if not isinstance(rid, str):
            continue
        kept = latest.get(rid)
        if kept is None or judgment.get("error") is None or kept.get("error") is not None:
            latest[rid] = judgment
    return latest


def judged_scores(job_dir: str | Path) -> dict[str, float]:
    """The judge's score of each record judged in a job dir (the latest verdict)."""
    return {
        rid: float(j["score"])
        for rid, j in latest_judgments(job_dir).items()
        if isinstance(j.get("score"), int | float)
    }


def judge_costs(job_dir: str | Path) -> float | None:
    """What every judge call of a job dir cost in USD; None when none has a known cost."""
    costs = [j["cost_usd"] for j in job_judgments(job_dir) if j.get("cost_usd") is not None]
    return round(sum(costs), 8) if costs else None


def merge_judgments(records: list[dict[str, Any]], job_dir: str | Path) -> list[dict[str, Any]]:
    """Give each judged record its judge's latest verdict (``latest_judgments``), the hook
    through which model-graded scores reach ``load_results`` and the summary.

    A judged record gets ``record["judge"]`` (``judge.*`` columns: model, score, grade,
    passed, reasoning, cost_usd, error type), and takes the judge's ``score`` when it has
    none of its own. No ``judgments.jsonl`` in ``job_dir``: nothing changes. Returns
    ``records``, changed in place.
    """
    verdicts = latest_judgments(job_dir)
    if not verdicts:
        return records
    for record in records:
        judgment = verdicts.get(str(record.get("record_id")))
        if judgment is None:
            continue
        error = judgment.get("error")
        record["judge"] = {
            "model": judgment.get("judge_model"),
            "score": judgment.get("score"),
            "grade": judgment.get("grade"),
            "passed": judgment.get("passed"),
            "reasoning": judgment.get("reasoning"),
            "cost_usd": judgment.get("cost_usd"),
            "error": error.get("type") if isinstance(error, dict) else None,
        }
        if record.get("score") is None and judgment.get("score") is not None:
            record["score"] = judgment["score"]
    return records
