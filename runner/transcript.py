"""Reading and writing ``transcript.jsonl``: one record a line, flushed as each call completes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonlines

from runner.record import TranscriptRecord

TRANSCRIPT_NAME = "transcript.jsonl"
log = logging.getLogger(__name__)


class TranscriptWriter:
    """Appends records to a job's transcript; each line is complete on disk when ``write`` returns.

    A line is written with a single ``write`` call and flushed, so a process killed at any
    moment leaves at most one torn last line, which readers skip and ``repair`` removes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._writer = jsonlines.Writer(self._file, compact=True, flush=True)

    def write(self, record: TranscriptRecord | dict[str, Any]) -> None:
        data = record.to_dict() if isinstance(record, TranscriptRecord) else record
        self._writer.write(data)

    def close(self) -> None:
        self._writer.close()
        self._file.close()

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the records of one transcript; a torn last line is skipped with a warning.

    A malformed line anywhere else is corruption, not a crash artefact: it raises ValueError
    naming the file and line.
    """
    with path.open("rb") as fh:
        lines = fh.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    last = len(lines)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield json.loads(raw)
        except ValueError as exc:
            if number == last:
                log.warning(
                    "%s: skipping torn last line %d (the run was interrupted)", path, number
                )
                return
            raise ValueError(f"{path}, line {number}: not a JSON record ({exc})") from None


def repair(path: Path) -> int:
    """Cut a torn last line off a transcript before appending to it; returns bytes removed."""
    if not path.exists():
        return 0
    with path.open("rb+") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
        return len(data) - keep
