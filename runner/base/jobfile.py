"""``job.json``: the facts about a job that its readers need and its records do not each say
(what a failed answer scores, the question set's order), written beside the transcript as
the job starts, so that the summary and the report read them instead of the job's config."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
FORMAT = "runner.job/1"
log = logging.getLogger(__name__)


@dataclass
class JobFacts:
    """One job as its readers need it."""

    job: int | None  # Hydra's job number (None for a single run)
    overrides: list[str]  # the job's overrides that shape the answers (as its records hold)
    failed_score: float | None  # what a failed answer scores in the job's mean (None: left out)
    question_set: str  # the question set's name
    conversations: list[str] = field(default_factory=list)  # its ids, in the set's order
    format: str = FORMAT


def write_job_facts(directory: Path, facts: JobFacts) -> Path:
    """Write ``job.json`` into ``directory`` whole (a new file renamed over the old one; not
    synced to the disk: after a crash, a reader that finds it unreadable passes it over)."""
    path = directory / JOB_FILE
    fresh = path.with_name(JOB_FILE + ".tmp")
    data = json.dumps(dataclasses.asdict(facts), ensure_ascii=False, indent=1) + "\n"
    fresh.write_text(data, encoding="utf-8")
    fresh.replace(path)  # readers see the old file or the new one, never half of one
    return path


def read_job_facts(directory: Path) -> JobFacts | None:
    """The facts in ``directory/job.json``; None when there is none (a run from before the
    file, or a transcript copied on its own) or it cannot be read (said in the log)."""
    path = Path(directory) / JOB_FILE
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        failed = data["failed_score"]
        return JobFacts(
            job=data.get("job"),
            overrides=[str(o) for o in data.get("overrides") or []],
            failed_score=None if failed is None else float(failed),
            question_set=str(data.get("question_set") or ""),
            conversations=[str(c) for c in data.get("conversations") or []],
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s cannot be read (%s): the job's defaults are used", path, exc)
        return None
