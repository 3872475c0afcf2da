"""Locks on run and sweep dirs and on transcripts: one process at a time, released at its end."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runner.base.errors import OutputLocked
from runner.core.lock import LOCK_NAME, lock_dir, lock_transcript

pytestmark = pytest.mark.slow  # each test starts a Python process that imports runner

HOLD = """
import sys
from pathlib import Path
from runner.core.lock import lock_dir, lock_transcript
kind, path = sys.argv[1], Path(sys.argv[2])
if kind == "bare":  # a flock with no pid written: the message cannot name the holder
    from filelock import FileLock
    hold = FileLock(path / ".runner.lock")
    hold.acquire()
else:
    hold = (lock_dir if kind == "dir" else lock_transcript)(path)
    hold.__enter__()
print("held", flush=True)
sys.stdin.read()
"""

TRY = """
import sys
from pathlib import Path
from runner.base.errors import OutputLocked
from runner.core.lock import lock_dir, lock_transcript
kind, path = sys.argv[1], Path(sys.argv[2])
try:
    with (lock_dir if kind == "dir" else lock_transcript)(path):
        print("took it")
except OutputLocked as exc:
    print(exc)
"""


@contextmanager
def held_elsewhere(kind: str, path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding a lock until the block ends; it is killed, not let go."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, kind, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdout.close()
        proc.stdin.close()


def try_elsewhere(kind: str, path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY, kind, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_dir_held_by_another_process_is_refused_naming_its_pid(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with held_elsewhere("dir", run_dir) as holder:
        with pytest.raises(OutputLocked) as refused, lock_dir(run_dir, "hydra.run.dir"):
            pass
        assert str(refused.value) == (
            f"{run_dir} is in use by another runner process (pid {holder.pid}): wait for it "
            "to finish, or choose another hydra.run.dir"
        )
    # killed outright, the holder's lock went with it
    with lock_dir(run_dir):
        assert (run_dir / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_a_holder_that_wrote_no_pid_is_still_refused(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    with (
        held_elsewhere("bare", tmp_path),
        pytest.raises(OutputLocked) as refused,
        lock_dir(tmp_path, "hydra.sweep.dir"),
    ):
        pass
    assert str(refused.value) == (
        f"{tmp_path} is in use by another runner process: wait for it to finish, or choose "
        "another hydra.sweep.dir"
    )


def test_a_dir_lock_is_reentrant_in_one_process_and_held_to_the_outer_end(tmp_path: Path) -> None:
    refusal = (
        f"{tmp_path} is in use by another runner process (pid {os.getpid()}): wait for it to "
        "finish, or choose another hydra.run.dir / hydra.sweep.dir"
    )
    with lock_dir(tmp_path, "hydra.sweep.dir"):
        with lock_dir(tmp_path, "hydra.sweep.dir"):  # the launcher inside the callback's hold
            pass
        assert try_elsewhere("dir", tmp_path) == refusal
    assert try_elsewhere("dir", tmp_path) == "took it"


def test_a_transcript_lock_is_its_own_file_and_held_across_processes(tmp_path: Path) -> None:
    transcript = tmp_path / "transcript.jsonl"
    with lock_dir(tmp_path), lock_transcript(transcript):  # a single run: both, one process
        assert (tmp_path / "transcript.jsonl.lock").exists()
    with held_elsewhere("transcript", transcript) as holder:
        assert try_elsewhere("transcript", transcript) == (
            f"{transcript} is in use by another runner process (pid {holder.pid}): wait for it "
            "to finish, or choose another hydra.run.dir / hydra.sweep.dir"
        )
        with lock_dir(tmp_path):  # the directory's lock is another file
            pass


def test_one_transcript_is_not_written_by_two_jobs_of_one_process(tmp_path: Path) -> None:
    transcript = tmp_path / "transcript.jsonl"
    with lock_transcript(transcript):
        with pytest.raises(OutputLocked) as refused, lock_transcript(transcript):
            pass
        assert str(refused.value) == (
            f"{transcript} is in use by another job of this process: give every job its own "
            "directory (hydra.sweep.subdir)"
        )
    with lock_transcript(transcript):  # released at the end of the block
        pass
