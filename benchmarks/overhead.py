"""Per-call overhead: the runner against a plain AsyncOpenAI loop, at zero server latency.

2,000 single-turn streamed calls to the fake server, 32 in flight, measured side by side
against one server process:

(a) the runner in-process: ``runner.cli.experiment.run_job(...)`` with the cache off (only that
    call is timed: compose, validate, plan, calls, records);
(b) a plain loop: ``AsyncOpenAI`` + ``asyncio.Semaphore(32)``, streaming with
    ``stream_options.include_usage`` and reading every chunk, the same messages.

Rounds alternate the order; the medians give calls/s and the ratio runner/plain (target
>= 0.8). Secondary lines: the runner with the cache on (a fresh cache dir: every call a
miss that is then stored), and again on the now-warm cache (every call a hit).

    python benchmarks/overhead.py [--calls 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _common as c

CONCURRENCY = 32
TARGET = 0.8


@dataclass
class Timing:
    wall_s: float
    cpu_s: float  # this process's CPU time, all threads (the server is another process)


def run_runner(overrides: list[str], out: Path, calls: int) -> Timing:
    from runner.cli.experiment import run_job

    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    _, result = run_job(overrides, out)
    timing = Timing(time.perf_counter() - started, time.process_time() - cpu)
    if result.calls != calls or result.errors:
        raise RuntimeError(f"runner wrote {result.calls} records, {result.errors} errors")
    return timing


def run_plain(base_url: str, system: str, questions: list[str]) -> Timing:
    gc.collect()
    cpu = time.process_time()
    started = time.perf_counter()
    asyncio.run(c.plain_calls(base_url, system, questions, CONCURRENCY))
    return Timing(time.perf_counter() - started, time.process_time() - cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    c.setup_env()
    print(f"overhead: {args.calls} calls, concurrency {CONCURRENCY}, server latency 0 s")
    print(f"machine: {c.machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, c.fake_server() as srv:
        root = Path(tmp)
        qfile = c.write_questions(root / "questions.jsonl", args.calls)
        warm_file = c.write_questions(root / "warmup.jsonl", 64, tag="w")
        questions = c.question_texts(qfile)
        base = [*c.model_overrides(srv.base_url, qfile), f"concurrency={CONCURRENCY}"]
        base += ["progress=false"]
        off = [*base, "cache.enabled=false"]
        system = c.system_message()

        # one-time costs (imports, tiktoken's encoding, Hydra's config search) out of the way
        warm = [*c.model_overrides(srv.base_url, warm_file), "cache.enabled=false"]
        run_runner([*warm, "progress=false"], root / "warmup", 64)
        run_plain(srv.base_url, system, c.question_texts(warm_file))

        runner_t: list[Timing] = []
        plain_t: list[Timing] = []
        for i in range(args.rounds):
            order = ("runner", "plain") if i % 2 == 0 else ("plain", "runner")
            for which in order:
                if which == "runner":
                    runner_t.append(run_runner(off, root / f"runner-{i}", args.calls))
                else:
                    plain_t.append(run_plain(srv.base_url, system, questions))
            print(
                f"  round {i + 1} ({' then '.join(order)}): runner {runner_t[-1].wall_s:.2f} s, "
                f"plain {plain_t[-1].wall_s:.2f} s",
                flush=True,
            )

        cache_dir = root / "cache"
        on = [*base, "cache.enabled=true", f"cache.dir={cache_dir}"]
        cold = run_runner(on, root / "cache-cold", args.calls)
        hits = run_runner(on, root / "cache-warm", args.calls)

    n = args.calls
    plain = Timing(c.median([t.wall_s for t in plain_t]), c.median([t.cpu_s for t in plain_t]))
    runner = Timing(c.median([t.wall_s for t in runner_t]), c.median([t.cpu_s for t in runner_t]))
    ratio = plain.wall_s / runner.wall_s
    cpu_ratio = plain.cpu_s / runner.cpu_s
    verdict = "met" if ratio >= TARGET else "NOT met"
    print()
    print(f"{'variant':<42} {'wall s':>7} {'calls/s':>8} {'CPU ms/call':>12}")
    rows = [
        ("plain AsyncOpenAI + Semaphore(32), median", plain),
        ("runner, cache off, median", runner),
        ("runner, cache on (fresh dir: all misses)", cold),
        ("runner, cache on (warm: all hits)", hits),
    ]
    for label, t in rows:
        print(f"{label:<42} {t.wall_s:>7.2f} {n / t.wall_s:>8.0f} {t.cpu_s / n * 1000:>12.2f}")
    print()
    print(f"ratio runner/plain, calls/s (medians) = {ratio:.2f}  (target >= {TARGET}: {verdict})")
    print(f"ratio runner/plain, calls per CPU-second = {cpu_ratio:.2f}")
    print(f"ratio runner cache-on (fresh)/plain, calls/s = {plain.wall_s / cold.wall_s:.2f}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
