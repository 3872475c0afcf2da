"""Resuming a job in its own directory: the records a killed run already wrote, checked against
this run's config and endpoint, and the turns to ask again.

A record is kept by its ``record_id`` (``runner.core.plan.record_id``). Records of items no
longer in the question set, or changed since, and the turns asked again (``resume_failed``,
or what a batch left unanswered) move to ``superseded.jsonl`` beside the transcript, so that
the transcript holds this experiment's records only and no record is ever written twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.base.errors import ConfigError
from runner.base.transcript import TranscriptWriter, read_records, repair
from runner.core.plan import JobPlan, record_id

log = logging.getLogger(__name__)

SUPERSEDED_NAME = "superseded.jsonl"
FAILED_AGAIN = "of failed calls (and the turns skipped after them), asked again"


def resume_records(plan: JobPlan, base_url: str | None) -> dict[str, dict[str, Any]]:
    """The records a killed run already wrote, by ``record_id``; ``{}`` for a new job.

    Refuses (``ConfigError``) to append to a transcript without ``resume=true``, or one
    written by another config or against another base URL. Records of items no longer in
    the question set, or changed since, move to ``superseded.jsonl`` beside it, so that the
    transcript holds this experiment's records only.
    """
    path = plan.transcript
    if not (path.exists() and path.stat().st_size):
        return {}
    if not plan.run.resume:
        raise ConfigError(
            f"{path} already holds records: pass resume=true to finish that run, "
            "or choose a new hydra.run.dir / hydra.sweep.dir"
        )
    repair(path)
    try:
        records = list(read_records(path))
    except ValueError as exc:
        raise ConfigError(
            f"{exc}: resume cannot trust this transcript; fix or remove that line, or choose "
            "a new hydra.run.dir / hydra.sweep.dir"
        ) from None
    _check_resumable(plan, records, base_url)
    wanted = {
        record_id(plan.config_hash, conv, number, choice, step, sample)
        for conv in plan.conversations
        for number in range(1, len(conv.turns) + 1)
        for choice in range(plan.choices)
        for step in range(plan.steps)
        for sample in range(plan.run.repeat)
    }
    done: dict[str, dict[str, Any]] = {}
    stale: list[dict[str, Any]] = []
    for record in records:
        rid = record.get("record_id")
        if rid in wanted and rid not in done:
            done[rid] = record
        else:
            stale.append(record)
    if stale:
        set_aside(path, list(done.values()), stale)
    return done


# Errors that are the model's own answer (a refusal, a content filter's stop): asking again
# would draw another sample, not repair a failure, so ``resume_failed`` keeps them.
MODEL_ANSWERS = frozenset({"Refusal", "ContentFilter"})


def error_type(record: dict[str, Any]) -> str | None:
    return (record.get("error") or {}).get("type")


def failed_call(record: dict[str, Any]) -> bool:
    """A record of a call that failed (a server error, a timeout, a dropped stream, ...): not
    an answer, nor a turn skipped after a failure."""
    kind = error_type(record)
    return kind is not None and kind not in MODEL_ANSWERS and kind != "Skipped"


def ask_again(
    plan: JobPlan,
    done: dict[str, dict[str, Any]],
    picked: Callable[[dict[str, Any]], bool],
    why: str,
) -> dict[str, dict[str, Any]]:
    """Set aside the turns to ask again; returns the records kept.

    In each conversation (and sample), from the first turn with a record ``picked`` selects,
    every record of that turn (each step of its tool loop, each choice) and of the turns after
    it moves to ``superseded.jsonl``: the turn is asked whole, so no record is written twice.
    """

    def asked(record: dict[str, Any]) -> tuple[str, int]:
        return record["conversation_id"], record.get("sample") or 0

    first: dict[tuple[str, int], int] = {}
    for record in done.values():
        if picked(record):
            key = asked(record)
            first[key] = min(first.get(key, record["turn"]), record["turn"])
    if not first:
        return done
    stale = {
        rid
        for rid, record in done.items()
        if asked(record) in first and record["turn"] >= first[asked(record)]
    }
    keep = {rid: r for rid, r in done.items() if rid not in stale}
    aside = [r for rid, r in done.items() if rid in stale]  # in the transcript's order
    set_aside(plan.transcript, list(keep.values()), aside, why)
    return keep


def _check_resumable(plan: JobPlan, records: list[dict[str, Any]], base_url: str | None) -> None:
    """Refuse to resume into a transcript another config (or another endpoint) wrote."""
    for number, record in enumerate(records, start=1):
        if record.get("base_url") != base_url:
            raise ConfigError(
                f"{plan.transcript} was written against base_url {record.get('base_url')}, and "
                f"this run sends to {base_url}: resume with the same model.base_url (and "
                "OPENAI_BASE_URL), or choose a new hydra.run.dir / hydra.sweep.dir"
            )
        theirs = record.get("config_hash")
        if theirs != plan.config_hash:
            differs = _first_difference(plan, record)
            raise ConfigError(
                f"{plan.transcript} (record {number}) was written by another config ({differs}): "
                "resume with the settings it was run with, or choose a new hydra.run.dir / "
                "hydra.sweep.dir"
            )


def _first_difference(plan: JobPlan, record: dict[str, Any]) -> str:
    run = plan.run
    ours = {
        "model": run.model.name,
        "system_message": run.system.message,
        "params": plan.params,
        "question_set": run.questions.name,
    }
    for key, value in ours.items():
        if record.get(key) != value:
            return f"{key} was {record.get(key)!r}, now {value!r}"
    return "max_history, token_budget or the model's limits differ"


def set_aside(
    path: Path,
    keep: list[dict[str, Any]],
    stale: list[dict[str, Any]],
    why: str = "of items no longer in the question set (or changed)",
) -> None:
    """Move ``stale`` records to ``superseded.jsonl`` and rewrite the transcript with ``keep``.

    The stale records are appended to the side file first, then the transcript is replaced
    in one rename: a crash at any point loses no record (at worst one is in both files).
    """
    aside = path.with_name(SUPERSEDED_NAME)
    with TranscriptWriter(aside) as writer:
        for record in stale:
            writer.write(record)
    fresh = path.with_name(path.name + ".rewrite")
    fresh.unlink(missing_ok=True)
    with TranscriptWriter(fresh) as writer:
        for record in keep:
            writer.write(record)
    fresh.replace(path)
    log.info("%s: %d record(s) %s moved to %s", path, len(stale), why, aside.name)
