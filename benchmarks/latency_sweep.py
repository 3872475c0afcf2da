"""A sweep against a slow server: do the jobs' calls really overlap?

20 jobs x 10 questions against the fake server answering after 200 ms, run as a user runs a
sweep: ``python -m runner -m 'sampling.seed=range(0,20)' ... concurrency=32`` (the runner
launcher: every job's calls in one event loop, under one limit of 32). Reports

(i)   the command's end-to-end wall time (Python start-up, Hydra, 20 job set-ups included);
(ii)  the call phase, from the records: first request start (``created_at - latency_s``)
      to the last record; ideal = 200 calls x 0.2 s / 32; target call-phase/ideal <= 1.3;
(iii) the same sweep with ``concurrency=1`` (200 calls one at a time), and the speed-up
      sequential/concurrent;
(iv)  its single-configuration equivalent: one run (no ``-m``) of 200 questions, concurrency
      32, end to end, alternating with the sweep; target wall(sweep) <= 1.5 x wall(run).

The concurrent sweep runs ``--repeat`` times (default 3) and the medians are reported.

For reference, the same 200 calls from a plain ``AsyncOpenAI`` loop with a semaphore of 32
in this process (alternating with the sweeps): what a bare client reaches against this
server on this machine. Also shown: the first wave (first request start to the end of the
32nd call: connection set-up and start-up contention) and the median call latency.

    python benchmarks/latency_sweep.py [--latency-s 0.2] [--skip-sequential]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import _common as c

JOBS = 20
QUESTIONS = 10
CONCURRENCY = 32
TARGET = 1.3
SINGLE_TARGET = 1.5


@dataclass
class SweepFigures:
    wall_s: float  # end to end; 0 for the in-process plain loop
    call_phase_s: float
    records: int
    errors: int
    first_wave_s: float  # first request start to the end of the 32nd call
    latency_p50_s: float


def figures(starts: list[float], ends: list[float], wall_s: float, errors: int) -> SweepFigures:
    first = min(starts)
    latencies = sorted(e - s for s, e in zip(starts, ends, strict=True))
    wave = sorted(ends)[min(CONCURRENCY, len(ends)) - 1] - first
    return SweepFigures(
        wall_s, max(ends) - first, len(ends), errors, wave, latencies[len(latencies) // 2]
    )


def run_sweep(
    base_url: str, questions: Path, sweep_dir: Path, concurrency: int, timeout_s: float
) -> SweepFigures:
    args = [
        "-m",
        f"sampling.seed=range(0,{JOBS})",
        *c.model_overrides(base_url, questions),
        f"concurrency={concurrency}",
        "cache.enabled=false",
        "progress=false",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    run = c.run_cli(args, timeout_s=timeout_s)
    df = c.load(sweep_dir)
    ends, starts = c.record_spans(df)
    return figures(starts, ends, run.wall_s, int(df["error.type"].notna().sum()))


def run_single(base_url: str, questions: Path, run_dir: Path) -> SweepFigures:
    """One run of every question at once: the sweep's calls without its jobs."""
    args = [
        *c.model_overrides(base_url, questions),
        f"concurrency={CONCURRENCY}",
        "cache.enabled=false",
        "progress=false",
        f"hydra.run.dir={run_dir}",
    ]
    run = c.run_cli(args, timeout_s=120)
    df = c.load(run_dir)
    ends, starts = c.record_spans(df)
    return figures(starts, ends, run.wall_s, int(df["error.type"].notna().sum()))


def run_plain(base_url: str, system: str, texts: list[str]) -> SweepFigures:
    spans = asyncio.run(c.plain_calls(base_url, system, texts, CONCURRENCY))
    return figures([s for s, _ in spans], [e for _, e in spans], 0.0, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=3, help="concurrent runs (median)")
    parser.add_argument("--skip-sequential", action="store_true")
    args = parser.parse_args(argv)
    c.setup_env()
    calls = JOBS * QUESTIONS
    ideal = calls * args.latency_s / CONCURRENCY
    print(
        f"latency sweep: {JOBS} jobs x {QUESTIONS} questions, server latency {args.latency_s} s, "
        f"concurrency {CONCURRENCY}"
    )
    print(f"machine: {c.machine()}")
    runs: list[SweepFigures] = []
    plains: list[SweepFigures] = []
    singles: list[SweepFigures] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp,
        c.fake_server(latency_s=args.latency_s) as srv,
    ):
        root = Path(tmp)
        qfile = c.write_questions(root / "questions.jsonl", QUESTIONS)
        all_q = c.write_questions(root / "all.jsonl", calls)
        texts = c.question_texts(qfile) * JOBS
        system = c.system_message()
        run_plain(srv.base_url, system, texts[:CONCURRENCY])  # the SDK's first-use costs
        for i in range(args.repeat):
            plains.append(run_plain(srv.base_url, system, texts))
            runs.append(run_sweep(srv.base_url, qfile, root / f"concurrent-{i}", CONCURRENCY, 120))
            singles.append(run_single(srv.base_url, all_q, root / f"single-{i}"))
            print(
                f"  round {i + 1}: sweep {runs[-1].wall_s:.2f} s end to end, call phase "
                f"{runs[-1].call_phase_s:.2f} s; single run {singles[-1].wall_s:.2f} s; "
                f"plain loop {plains[-1].call_phase_s:.2f} s",
                flush=True,
            )
        seq = None
        if not args.skip_sequential:
            seq = run_sweep(srv.base_url, qfile, root / "sequential", 1, 300)
            print(f"  sequential sweep done in {seq.wall_s:.2f} s", flush=True)

    for fig in [*runs, *singles, seq]:
        if fig is not None and (fig.records != calls or fig.errors):
            print(f"a sweep wrote {fig.records} records, {fig.errors} errors (expected {calls}, 0)")
            return 2
    conc = median_figures(runs)
    plain = median_figures(plains)
    one = median_figures(singles)
    ratio = conc.call_phase_s / ideal
    verdict = "met" if ratio <= TARGET else "NOT met"
    print()
    print(f"records: {conc.records} a sweep, errors: {conc.errors}")
    print(f"ideal call phase = {calls} x {args.latency_s} s / {CONCURRENCY} = {ideal:.2f} s")
    print(
        f"{'variant (medians)':<30} {'end-to-end s':>13} {'call phase s':>13} "
        f"{'1st wave s':>11} {'p50 latency s':>14}"
    )
    rows = [
        ("runner sweep, concurrency 32", conc),
        ("one run of 200, 32", one),
        ("plain AsyncOpenAI, 32", plain),
    ]
    if seq is not None:
        rows.append(("runner sweep, concurrency 1", seq))
    for label, f in rows:
        wall = f"{f.wall_s:.2f}" if f.wall_s else "-"
        print(
            f"{label:<30} {wall:>13} {f.call_phase_s:>13.2f} {f.first_wave_s:>11.2f} "
            f"{f.latency_p50_s:>14.3f}"
        )
    print()
    print(f"ratio call-phase/ideal = {ratio:.2f}  (target <= {TARGET}: {verdict})")
    print(f"ratio end-to-end/ideal = {conc.wall_s / ideal:.2f}")
    print(f"reference: plain loop call-phase/ideal = {plain.call_phase_s / ideal:.2f}")
    single_ratio = conc.wall_s / one.wall_s
    single_met = single_ratio <= SINGLE_TARGET
    print(
        f"ratio end-to-end sweep/single run of the same 200 calls = {single_ratio:.2f}  "
        f"(target <= {SINGLE_TARGET}: {'met' if single_met else 'NOT met'})"
    )
    outside = conc.wall_s - conc.call_phase_s
    print(f"start-up and wind-down outside the call phase = {outside:.2f} s")
    if seq is not None:
        phase_x = seq.call_phase_s / conc.call_phase_s
        print(
            f"speed-up sequential/concurrent: call phase {phase_x:.1f}x, "
            f"end-to-end {seq.wall_s / conc.wall_s:.1f}x"
        )
    return 0 if ratio <= TARGET and single_met else 1


def median_figures(runs: list[SweepFigures]) -> SweepFigures:
    """Each figure's median over the runs."""
    return SweepFigures(
        c.median([r.wall_s for r in runs]),
        c.median([r.call_phase_s for r in runs]),
        runs[0].records,
        max(r.errors for r in runs),
        c.median([r.first_wave_s for r in runs]),
        c.median([r.latency_p50_s for r in runs]),
    )


if __name__ == "__main__":
    sys.exit(main())
