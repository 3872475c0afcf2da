"""Peak memory of a large sweep: 20 jobs x 1,000 questions = 20,000 calls.

Runs the CLI as a user does, ``python -m runner -m 'sampling.seed=range(0,20)' ...``, against
the fake server at zero latency, concurrency 64, cache off, and reports the child process's
peak RSS (``ru_maxrss`` from ``os.wait4``, cross-checked with
``getrusage(RUSAGE_CHILDREN)``; KiB on Linux), target < 300 MB, with the records written
(must be 20,000) and the time taken. A small sweep of the same shape (20 x 10) runs first as
the baseline: what the process needs before the number of calls matters.

    python benchmarks/memory.py [--jobs 20] [--questions 1000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import _common as c

CONCURRENCY = 64
TARGET_MB = 300


def sweep(base_url: str, questions: Path, jobs: int, sweep_dir: Path) -> c.CliRun:
    args = [
        "-m",
        f"sampling.seed=range(0,{jobs})",
        *c.model_overrides(base_url, questions),
        f"concurrency={CONCURRENCY}",
        "cache.enabled=false",
        "progress=false",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    return c.run_cli(args, timeout_s=600)


def count_records(sweep_dir: Path) -> tuple[int, int, int]:
    """Records, error records and bytes over every transcript, without pandas."""
    import json

    records = errors = size = 0
    for path in sweep_dir.rglob("transcript.jsonl"):
        size += path.stat().st_size
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    records += 1
                    errors += json.loads(line).get("error") is not None
    return records, errors, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--questions", type=int, default=1000)
    args = parser.parse_args(argv)
    c.setup_env()
    calls = args.jobs * args.questions
    print(
        f"memory: {args.jobs} jobs x {args.questions} questions = {calls} calls, "
        f"concurrency {CONCURRENCY}, server latency 0 s, cache off"
    )
    print(f"machine: {c.machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, c.fake_server() as srv:
        root = Path(tmp)
        small_q = c.write_questions(root / "small.jsonl", 10, tag="s")
        big_q = c.write_questions(root / "big.jsonl", args.questions)
        small = sweep(srv.base_url, small_q, args.jobs, root / "small")
        print(f"  baseline {args.jobs} x 10 done in {small.wall_s:.2f} s", flush=True)
        big = sweep(srv.base_url, big_q, args.jobs, root / "big")
        # the server is still running (not yet reaped): RUSAGE_CHILDREN covers the sweeps only
        children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"  {calls}-call sweep done in {big.wall_s:.2f} s", flush=True)
        records, errors, size = count_records(root / "big")

    peak_mb = big.max_rss_kib * 1024 / 1e6  # the target is in MB (10^6 bytes)
    verdict = "met" if peak_mb < TARGET_MB and records == calls and errors == 0 else "NOT met"
    print()
    print(f"{'sweep':<28} {'wall s':>8} {'calls/s':>8} {'peak RSS MiB':>13}")
    print(
        f"{f'{args.jobs} x 10 (baseline)':<28} {small.wall_s:>8.2f} "
        f"{args.jobs * 10 / small.wall_s:>8.0f} {small.max_rss_kib / 1024:>13.1f}"
    )
    print(
        f"{f'{args.jobs} x {args.questions}':<28} {big.wall_s:>8.2f} "
        f"{calls / big.wall_s:>8.0f} {big.max_rss_kib / 1024:>13.1f}"
    )
    print()
    print(f"records written: {records} (expected {calls}), errors: {errors}")
    print(f"transcripts: {size / 2**20:.1f} MiB on disk")
    print(f"RUSAGE_CHILDREN ru_maxrss after the sweep: {children_kib / 1024:.1f} MiB")
    growth = (big.max_rss_kib - small.max_rss_kib) / 1024
    print(f"growth over the baseline: {growth:.1f} MiB ({growth * 1024 / calls:.2f} KiB a call)")
    peak = big.max_rss_kib / 1024
    print(f"peak RSS {peak:.1f} MiB = {peak_mb:.1f} MB (target < {TARGET_MB} MB): {verdict}")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
