"""What a sweep costs before its calls: start-up, and setting up each job.

All on ``model=echo`` (the offline model: no server, the calls cost next to nothing), run as a
user runs them, side by side in one run:

(i)   a single run, ``python -m runner`` (5 questions), ``--rounds`` times: the median wall
      time, and how much of it is importing the openai SDK (``-X importtime``); also the
      median wall time of ``--help`` and of a dry run, which make no call;
(ii)  a 200-job sweep, ``python -m runner -m 'sampling.seed=range(0,200)'`` (1,000 calls),
      alternating with (i): target wall(sweep) <= 4 x wall(single run);
(iii) a 1,000-job sweep once: the child's peak RSS (``ru_maxrss`` from ``os.wait4``),
      target < 400 MB, and its wall time.

    python benchmarks/sweep_setup.py [--rounds 3] [--jobs 200] [--big-jobs 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c

SWEEP_TARGET = 4.0
RSS_TARGET_MB = 400
QUIET = ["progress=false", "cache.enabled=false"]


def single(out: Path) -> c.CliRun:
    return c.run_cli([*QUIET, f"hydra.run.dir={out}"])


def sweep(jobs: int, out: Path) -> c.CliRun:
    return c.run_cli(
        ["-m", f"sampling.seed=range(0,{jobs})", *QUIET, f"hydra.sweep.dir={out}"], timeout_s=900
    )


def openai_import_s(out: Path) -> tuple[float, float]:
    """The single run's total import time and that of ``openai`` (cumulative), in seconds."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", *QUIET, f"hydra.run.dir={out}"],
        cwd=c.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    total = sdk = 0.0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        depth = len(name) - len(name.lstrip())
        if depth == 1:  # a top-level import: its cumulative time counts once
            total += int(cumulative) / 1e6
        if name.strip() == "openai":
            sdk = int(cumulative) / 1e6
    return total, sdk


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=c.REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        check=True,
    )
    return time.perf_counter() - started


def count_records(sweep_dir: Path) -> int:
    return sum(
        len(p.read_text().splitlines()) for p in sweep_dir.glob("*/transcript.jsonl") if p.is_file()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--big-jobs", type=int, default=1000, help="0 to skip")
    args = parser.parse_args(argv)
    c.setup_env()
    print(f"sweep set-up: model=echo, {args.jobs}-job sweep vs a single run, {args.rounds} rounds")
    print(f"machine: {c.machine()}")
    singles: list[float] = []
    sweeps: list[float] = []
    helps: list[float] = []
    dries: list[float] = []
    imports: list[tuple[float, float]] = []
    big = None
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmp:
        root = Path(tmp)
        timed(["--help"])  # the first start reads every file from disk
        for i in range(args.rounds):
            singles.append(single(root / f"single-{i}").wall_s)
            sweep_dir = root / f"sweep-{i}"
            sweeps.append(sweep(args.jobs, sweep_dir).wall_s)
            records = count_records(sweep_dir)
            if records != 5 * args.jobs:
                print(f"the sweep wrote {records} records, expected {5 * args.jobs}")
                return 2
            helps.append(timed(["--help"]))
            dries.append(timed(["dry_run=true", f"hydra.run.dir={root}/dry-{i}"]))
            imports.append(openai_import_s(root / f"imports-{i}"))
            print(
                f"  round {i + 1}: single run {singles[-1]:.2f} s, {args.jobs}-job sweep "
                f"{sweeps[-1]:.2f} s, --help {helps[-1]:.2f} s, dry run {dries[-1]:.2f} s",
                flush=True,
            )
        if args.big_jobs:
            big = sweep(args.big_jobs, root / "big")
            big_records = count_records(root / "big")
            print(f"  {args.big_jobs}-job sweep done in {big.wall_s:.2f} s", flush=True)

    one, many = c.median(singles), c.median(sweeps)
    ratio = many / one
    met = ratio <= SWEEP_TARGET
    print()
    print(f"single run (median):          {one:.2f} s")
    total, sdk = c.median([t for t, _ in imports]), c.median([s for _, s in imports])
    print(f"  of which imports:           {total:.2f} s, openai {sdk:.2f} s (-X importtime)")
    print(f"--help (median):              {c.median(helps):.2f} s")
    print(f"dry run (median):             {c.median(dries):.2f} s")
    print(f"{args.jobs}-job sweep (median):     {many:.2f} s")
    per_job = (many - one) / max(args.jobs - 1, 1) * 1000
    print(f"  each job past the first:    {per_job:.1f} ms (set-up and 5 echo calls)")
    verdict = "met" if met else "NOT met"
    print(f"ratio sweep/single = {ratio:.2f}  (target <= {SWEEP_TARGET:g}: {verdict})")
    if big is not None:
        peak = big.max_rss_kib / 1024
        peak_mb = big.max_rss_kib * 1024 / 1e6  # the target is in MB (10^6 bytes)
        rss_met = peak_mb < RSS_TARGET_MB and big_records == 5 * args.big_jobs
        met = met and rss_met
        print(
            f"{args.big_jobs}-job sweep: {big.wall_s:.2f} s, {big_records} records, peak RSS "
            f"{peak:.1f} MiB = {peak_mb:.1f} MB (target < {RSS_TARGET_MB} MB: "
            f"{'met' if rss_met else 'NOT met'})"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
