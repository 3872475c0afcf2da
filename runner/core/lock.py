"""Exclusive locks on what a process writes: a run or sweep directory, and a transcript.

Two processes given the same ``hydra.run.dir`` or ``hydra.sweep.dir`` would otherwise both
write ``.hydra/`` there and append the same records twice. A lock is taken without waiting:
the second process stops at once with one line naming the first one's pid. They are
``flock`` locks (filelock), so the OS releases them when their process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from filelock import BaseFileLock, FileLock, Timeout

from runner.base.errors import OutputLocked

LOCK_NAME = ".runner.lock"
ANY_DIR = "hydra.run.dir / hydra.sweep.dir"


@dataclass
class _Hold:
    lock: BaseFileLock
    count: int = 1


_held: dict[Path, _Hold] = {}
_guard = threading.Lock()


def lock_dir(directory: Path, what: str = ANY_DIR) -> AbstractContextManager[None]:
    """Hold ``<directory>/.runner.lock`` while the block runs (the directory is created).

    Raises ``OutputLocked`` at once if another process holds it; ``what`` is the setting the
    message tells the user to change. Reentrant within a process: the run's callback and the
    sweep launcher may both take it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    return _hold(directory / LOCK_NAME, directory, what, reentrant=True)


def lock_transcript(path: Path) -> AbstractContextManager[None]:
    """Hold ``<path>.lock`` while a job reads, repairs and appends to the transcript ``path``.

    Raises ``OutputLocked`` at once if another process, or another job of this one, holds it.
    A file of its own, so that it never meets the lock of the run directory around it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return _hold(path.with_name(path.name + ".lock"), path, ANY_DIR, reentrant=False)


@contextlib.contextmanager
def _hold(lock_path: Path, subject: Path, what: str, reentrant: bool) -> Iterator[None]:
    key = lock_path.resolve()
    with _guard:
        hold = _held.get(key)
        if hold is None:
            hold = _held[key] = _Hold(_acquire(lock_path, subject, what))
        elif reentrant:
            hold.count += 1
        else:
            raise OutputLocked(
                f"{subject} is in use by another job of this process: give every job its own "
                "directory (hydra.sweep.subdir)"
            )
    try:
        yield
    finally:
        with _guard:
            hold.count -= 1
            if hold.count == 0:
                del _held[key]
                hold.lock.release()


def _acquire(lock_path: Path, subject: Path, what: str) -> BaseFileLock:
    # Read first too: some filelock versions empty the file as they try to take it.
    before = _holder(lock_path)
    lock = FileLock(lock_path, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pid = _holder(lock_path) or before
        who = f"another runner process (pid {pid})" if pid else "another runner process"
        raise OutputLocked(
            f"{subject} is in use by {who}: wait for it to finish, or choose another {what}"
        ) from None
    _write_pid(lock_path)
    return lock


def _holder(lock_path: Path) -> int | None:
    """The pid the holder wrote into the lock file, if there is one."""
    try:
        text = lock_path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _write_pid(lock_path: Path) -> None:
    # A second descriptor: the flock belongs to filelock's, which stays open until release.
    with contextlib.suppress(OSError):
        fd = os.open(lock_path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)
