"""Reading and writing ``transcript.jsonl``: one record a line, on disk as each call completes."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from runner.base.record import TranscriptRecord

TRANSCRIPT_NAME = "transcript.jsonl"
log = logging.getLogger(__name__)


class TranscriptWriter:
    """Appends records to a job's transcript; each line is in the OS when ``write`` returns.

    A record is encoded whole (JSON and its newline) and handed to the OS in one ``write`` on
    an ``O_APPEND`` descriptor, with no buffer in this process: a process killed at any moment
    leaves complete lines and at most one torn last line, which readers skip and ``repair``
    removes. A record is never complete on disk without its newline because of a kill between
    two writes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def write(self, record: TranscriptRecord | dict[str, Any]) -> None:
        self.write_many([record])

    def write_many(self, records: Sequence[TranscriptRecord | dict[str, Any]]) -> None:
        """Write several records (the choices of one call) in one ``write``, so that a kill
        leaves all of them or none (and at most a torn last line)."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the transcript writer is closed")
        text = "".join(
            json.dumps(
                r.to_dict() if isinstance(r, TranscriptRecord) else r,
                ensure_ascii=False,
                separators=(",", ":"),
            )
            + "\n"
            for r in records
        )
        pending = memoryview(text.encode("utf-8"))
        while pending:  # a regular file takes it whole; loop only in case the OS took less
            pending = pending[os.write(self._fd, pending) :]

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_transcripts(path: Path) -> list[Path]:
    """The transcripts of a run dir, a sweep dir or any directory below which runs wrote,
    in natural order (job 2 before job 10), or ``[path]`` for a transcript file; ``[]`` when
    there is none."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    found = [f for f in path.rglob(TRANSCRIPT_NAME) if f.is_file()]
    return sorted(found, key=lambda f: _natural_key(f.relative_to(path)))


def _natural_key(path: Path) -> tuple[tuple[tuple[int, int | str], ...], ...]:
    """Sort key of a relative path comparing digit runs as numbers: 2/ before 10/."""
    return tuple(
        tuple((0, int(c)) if c.isdecimal() else (1, c) for c in re.split(r"(\d+)", part))
        for part in path.parts
    )


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
    """Make a transcript end in a newline before appending to it; returns bytes removed.

    A last line without its newline that is a whole JSON object is a complete record (the
    kill came before the newline reached the disk): it gets its newline and is kept. Only a
    last line that does not parse is torn, and cut.
    """
    if not path.exists():
        return 0
    with path.open("rb+") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        if _is_record(data[keep:]):
            fh.write(b"\n")
            removed = 0
        else:
            fh.truncate(keep)
            removed = len(data) - keep
        fh.flush()
        os.fsync(fh.fileno())
        return removed


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
