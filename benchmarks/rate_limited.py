"""A rate-limited server: does the runner keep to the limit without losing calls?

The fake server answers 429 (with a ``retry-after-ms`` header) above R requests a second
(a token bucket holding R tokens). The runner runs 400 single-turn calls in-process
(``runner.cli.experiment.run_job``), concurrency 32, retries on (the default 6 attempts):

1. with the preset's client-side limit ``model.rpm = R x 60``;
2. with ``model.rpm=null``: no client-side limit, relying on the server's Retry-After.

For each: achieved rate = answered records / call phase (first request start to the last
record, from the records) over R (target >= 0.9; all records a second is shown too), error
records (target 0), and the 429s the
server sent as seen from the records (calls with ``attempts > 1``, and the sum of
``attempts - 1``: every retry here answers a 429).

    python benchmarks/rate_limited.py [--rate 40] [--calls 400]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _common as c

CONCURRENCY = 32
TARGET = 0.9


@dataclass
class Figures:
    label: str
    wall_s: float
    call_phase_s: float
    records: int
    errors: int
    retried_calls: int
    retries: int
    max_attempts: int

    def rate(self) -> float:
        """Answered calls a second over the call phase (error records not counted)."""
        return (self.records - self.errors) / self.call_phase_s

    def record_rate(self) -> float:
        return self.records / self.call_phase_s


def run(label: str, overrides: list[str], out: Path) -> Figures:
    from runner.cli.experiment import run_job

    started = time.perf_counter()
    run_job(overrides, out)
    wall = time.perf_counter() - started
    df = c.load(out)
    phase, _ = c.call_phase(df)
    attempts = df["attempts"].astype(int)
    return Figures(
        label,
        wall,
        phase,
        len(df),
        int(df["error.type"].notna().sum()),
        int((attempts > 1).sum()),
        int((attempts - 1).clip(lower=0).sum()),
        int(attempts.max()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0, help="server limit, requests/s")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--latency-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    c.setup_env()
    rpm = int(args.rate * 60)
    print(
        f"rate limited: {args.calls} calls, server limit {args.rate:g}/s "
        f"(429 + retry-after-ms above it), concurrency {CONCURRENCY}, "
        f"server latency {args.latency_s} s"
    )
    print(f"machine: {c.machine()}")
    results: list[Figures] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-rate-") as tmp,
        c.fake_server(latency_s=args.latency_s, rate_limit_per_s=args.rate) as srv,
    ):
        root = Path(tmp)
        qfile = c.write_questions(root / "questions.jsonl", args.calls)
        base = [
            *c.model_overrides(srv.base_url, qfile),
            f"concurrency={CONCURRENCY}",
            "cache.enabled=false",
            "progress=false",
        ]
        variants = [
            (f"model.rpm={rpm} (client-side limit)", [f"model.rpm={rpm}"]),
            ("model.rpm=null (server Retry-After only)", ["model.rpm=null"]),
        ]
        for i, (label, extra) in enumerate(variants):
            time.sleep(1.5)  # let the server's bucket refill between variants
            fig = run(label, [*base, *extra], root / f"run-{i}")
            print(f"  {label}: done in {fig.wall_s:.2f} s", flush=True)
            results.append(fig)

    print()
    header = (
        f"{'variant':<42} {'phase s':>8} {'rec/s':>6} {'ok/s':>6} {'ok/R':>5} {'errors':>6} "
        f"{'429d calls':>10} {'429s':>5} {'max att':>7}"
    )
    print(header)
    for f in results:
        print(
            f"{f.label:<42} {f.call_phase_s:>8.2f} {f.record_rate():>6.1f} {f.rate():>6.1f} "
            f"{f.rate() / args.rate:>5.2f} {f.errors:>6} {f.retried_calls:>10} {f.retries:>5} "
            f"{f.max_attempts:>7}"
        )
    print()
    ok = True
    for f in results:
        ratio = f.rate() / args.rate
        met = ratio >= TARGET and f.errors == 0 and f.records == args.calls
        ok = ok and met
        print(
            f"{f.label}: answered/s / R = {ratio:.2f} (target >= {TARGET}), {f.records} records, "
            f"{f.errors} errors (target 0): {'met' if met else 'NOT met'}"
        )
    print("(a rate/R a little over 1 is the server's bucket starting full: R calls at once)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
