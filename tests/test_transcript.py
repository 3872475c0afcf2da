"""``transcript.jsonl`` on disk: one write per record; a repair that keeps every whole record."""

import hashlib
import itertools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from runner.base import transcript
from runner.base.transcript import TranscriptWriter, read_records, repair

SIZES = (300, 70 * 1024, 300 * 1024, 5_000)  # bytes of question text, in turn


def make_record(index: int) -> dict:
    """The record a writer writes ``index``-th: big ones, non-ASCII text, a hash of the text."""
    size = SIZES[index % len(SIZES)]
    text = (f"question {index}: où est la capitale? " * (size // 30 + 1))[:size]
    return {"index": index, "question": text, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def write_forever(path: str) -> None:
    """Run in a subprocess by the kill test: write records until killed."""
    with TranscriptWriter(Path(path)) as writer:
        for index in itertools.count():
            writer.write(make_record(index))
            if index == 0:
                print("ready", flush=True)
            time.sleep(0.002)


@pytest.mark.parametrize("size", [70 * 1024, 1024 * 1024 + 17])
def test_a_record_goes_to_the_os_in_one_write(tmp_path: Path, monkeypatch, size: int) -> None:
    calls: list[int] = []
    real_write = transcript.os.write

    def counting_write(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(transcript.os, "write", counting_write)
    record = {"id": "big", "question": "é" + "x" * size, "answer": "ünïcödé"}
    path = tmp_path / "transcript.jsonl"
    with TranscriptWriter(path) as writer:
        writer.write(record)
    assert calls == [len(line(record))]
    assert path.read_bytes() == line(record)  # compact, UTF-8 (not \u escapes), one newline


def test_a_short_write_is_finished_in_order(tmp_path: Path, monkeypatch) -> None:
    real_write = transcript.os.write
    calls: list[int] = []

    def short_write(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:1000]))

    monkeypatch.setattr(transcript.os, "write", short_write)
    records = [{"n": 1, "text": "a" * 2500}, {"n": 2, "text": "b" * 10}]
    path = tmp_path / "transcript.jsonl"
    with TranscriptWriter(path) as writer:
        for record in records:
            writer.write(record)
    first = len(line(records[0]))
    assert calls == [first, first - 1000, first - 2000, len(line(records[1]))]
    assert path.read_bytes() == line(records[0]) + line(records[1])


def test_appends_to_what_is_there_and_refuses_after_close(tmp_path: Path) -> None:
    path = tmp_path / "transcript.jsonl"
    path.write_bytes(line({"n": 0}))
    writer = TranscriptWriter(path)
    writer.write({"n": 1})
    writer.close()
    assert list(read_records(path)) == [{"n": 0}, {"n": 1}]
    with pytest.raises(ValueError, match="closed"):
        writer.write({"n": 2})


def test_repair_keeps_a_whole_last_record_that_lacks_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "transcript.jsonl"
    whole = line({"n": 0}) + line({"n": 1, "text": "é" * 100})
    path.write_bytes(whole[:-1])  # the kill came between the record and its newline
    assert repair(path) == 0
    assert path.read_bytes() == whole
    assert [r["n"] for r in read_records(path)] == [0, 1]


def test_repair_cuts_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "transcript.jsonl"
    torn = b'{"n":1,"text":"hal'
    path.write_bytes(line({"n": 0}) + torn)
    assert repair(path) == len(torn)
    assert path.read_bytes() == line({"n": 0})


def test_repair_leaves_a_clean_transcript_alone(tmp_path: Path) -> None:
    path = tmp_path / "transcript.jsonl"
    path.write_bytes(line({"n": 0}))
    assert repair(path) == 0
    assert path.read_bytes() == line({"n": 0})
    assert repair(tmp_path / "missing.jsonl") == 0


@pytest.mark.slow
def test_a_killed_writer_leaves_every_record_it_wrote_whole(tmp_path: Path) -> None:
    rng = random.Random()
    for run in range(5):
        path = tmp_path / f"transcript-{run}.jsonl"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from test_transcript import write_forever; write_forever({str(path)!r})",
            ],
            cwd=REPO / "tests",
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        delay = rng.uniform(0.05, 0.4)
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()

        before = path.read_bytes()
        removed = repair(path)
        after = path.read_bytes()
        records = list(read_records(path))
        n = len(records)
        where = f"run {run}, killed after {delay:.3f} s, {n} records"
        assert n >= 1, where
        # each record is what was written, in order, with none missing before the last
        assert after == b"".join(line(make_record(i)) for i in range(n)), where
        for record in records:
            assert hashlib.sha256(record["question"].encode()).hexdigest() == record["sha256"]
        if after == before + b"\n":  # a whole record whose newline had not reached the file
            assert removed == 0, where
        else:  # at most one torn line was cut, and it was not a whole record
            assert after == before[: len(after)], where
            cut = before[len(after) :]
            assert removed == len(cut), where
            assert line(make_record(n)).startswith(cut), where
            assert len(cut) < len(line(make_record(n))) - 1, where
        path.unlink()


def test_the_choices_of_a_call_go_out_in_one_write(tmp_path: Path, monkeypatch) -> None:
    calls: list[int] = []
    real_write = transcript.os.write

    def counting_write(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(transcript.os, "write", counting_write)
    records = [{"record_id": f"r{i}", "choice": i, "answer": "x" * 40_000} for i in range(3)]
    path = tmp_path / "transcript.jsonl"
    with TranscriptWriter(path) as writer:
        writer.write_many(records)
    assert calls == [sum(len(line(r)) for r in records)]
    assert path.read_bytes() == b"".join(line(r) for r in records)
