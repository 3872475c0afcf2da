"""Per-call overhead: the runner against a plain AsyncOpenAI loop, at zero server latency.

2,000 single-turn streamed calls to the fake server, 32 in flight, measured side by side
against one server process:

(a) the runner in-process: ``runner.experiment.run_job(...)`` with the cache off (only that
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
from pathlib import Path

import _common as c

CONCURRENCY = 32
TARGET = 0.8


def run_runner(overrides: list[str], out: Path, calls: int) -> float:
    from runner.experiment import run_job

    gc.collect()
    started = time.perf_counter()
    _, result = run_job(overrides, out)
    elapsed = time.perf_counter() - started
    if result.calls != calls or result.errors:
        raise RuntimeError(f"runner wrote {result.calls} records, {result.errors} errors")
    return elapsed


async def _plain(base_url: str, system: str, questions: list[str]) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=c.API_KEY, base_url=base_url, max_retries=0)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(question: str) -> int:
        async with slots:
            stream = await client.chat.completions.create(
                model=c.MODEL,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                ],
                stream=True,
                stream_options={"include_usage": True},
            )
            parts: list[str] = []
            usage = None
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices[:1]:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
            return int(bool("".join(parts)) and usage is not None)

    try:
        done = await asyncio.gather(*(one(q) for q in questions))
    finally:
        await client.close()
    return sum(done)


def run_plain(base_url: str, system: str, questions: list[str]) -> float:
    gc.collect()
    started = time.perf_counter()
    ok = asyncio.run(_plain(base_url, system, questions))
    elapsed = time.perf_counter() - started
    if ok != len(questions):
        raise RuntimeError(f"plain loop: {ok} of {len(questions)} calls answered with usage")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    c.setup_env()
    from runner.experiment import compose

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
        system = str(compose(off).system.message)

        # one-time costs (imports, tiktoken's encoding, Hydra's config search) out of the way
        warm = [*c.model_overrides(srv.base_url, warm_file), "cache.enabled=false"]
        run_runner([*warm, "progress=false"], root / "warmup", 64)
        run_plain(srv.base_url, system, c.question_texts(warm_file))

        runner_s: list[float] = []
        plain_s: list[float] = []
        for i in range(args.rounds):
            order = ("runner", "plain") if i % 2 == 0 else ("plain", "runner")
            for which in order:
                if which == "runner":
                    runner_s.append(run_runner(off, root / f"runner-{i}", args.calls))
                else:
                    plain_s.append(run_plain(srv.base_url, system, questions))
            print(
                f"  round {i + 1} ({' then '.join(order)}): runner {runner_s[-1]:.2f} s, "
                f"plain {plain_s[-1]:.2f} s",
                flush=True,
            )

        cache_dir = root / "cache"
        on = [*base, "cache.enabled=true", f"cache.dir={cache_dir}"]
        cold = run_runner(on, root / "cache-cold", args.calls)
        warm_hit = run_runner(on, root / "cache-warm", args.calls)

    runner_rate = args.calls / c.median(runner_s)
    plain_rate = args.calls / c.median(plain_s)
    ratio = runner_rate / plain_rate
    verdict = "met" if ratio >= TARGET else "NOT met"
    print()
    print(f"{'variant':<42} {'median s':>9} {'calls/s':>9}")
    print(f"{'plain AsyncOpenAI + Semaphore(32)':<42} {c.median(plain_s):>9.2f} {plain_rate:>9.0f}")
    print(f"{'runner, cache off':<42} {c.median(runner_s):>9.2f} {runner_rate:>9.0f}")
    print(
        f"{'runner, cache on (fresh dir: all misses)':<42} {cold:>9.2f} {args.calls / cold:>9.0f}"
    )
    print(
        f"{'runner, cache on (warm: all hits)':<42} {warm_hit:>9.2f} {args.calls / warm_hit:>9.0f}"
    )
    print()
    print(f"ratio runner/plain (calls/s, medians) = {ratio:.2f}  (target >= {TARGET}: {verdict})")
    print(f"ratio runner cache-on(fresh)/plain = {args.calls / cold / plain_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
