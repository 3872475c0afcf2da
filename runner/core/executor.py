"""Running jobs: ``execute_job`` runs one job's plan (its lock, resume, judge, and its calls
streamed or through the Batch API), and an ``Executor`` runs jobs' calls in one event loop,
on a thread of its own, under one shared Gateway.

A single run uses one ``Executor`` for its one job; the runner launcher uses one for a whole
sweep, so every job shares the concurrency limit, rate limits, cache and progress line.
Callers on any thread (Hydra's job threads, a notebook cell) submit a plan and wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.base.schema import CacheSettings
from runner.core.job import (
    JobResult,
    JobRunner,
    RecordSink,
    TranscriptWriteError,
    open_writer,
    write_facts,
)
from runner.core.judge import judge_for_job
from runner.core.lock import lock_transcript
from runner.core.plan import JobPlan
from runner.core.progress import Progress
from runner.core.recorder import Recorder
from runner.core.resume import FAILED_AGAIN, ask_again, failed_call, resume_records
from runner.wire.cache import ResponseCache
from runner.wire.gateway import Gateway

# One line a request from the HTTP client drowns everything else in a sweep of thousands.
logging.getLogger("httpx2").setLevel(logging.WARNING)


async def execute_job(plan: JobPlan, gateway: Gateway, sink: RecordSink | None = None) -> JobResult:
    """Ask every conversation of a plan; returns the job's totals. Records are on disk as made.

    An unexpected exception in one conversation becomes its error record and the others go
    on; only a transcript that cannot be written stops the job (``TranscriptWriteError``).
    """
    base_url = None
    if plan.run.model.engine != "echo":
        base_url = gateway.endpoint_for(plan.run.model)
    with lock_transcript(plan.transcript):
        if plan.run.batch:  # loaded by the jobs that use it
            from runner.core.batch import execute_batch

            return await execute_batch(plan, gateway, sink, base_url)
        return await _execute_streamed(plan, gateway, sink, base_url)


async def _execute_streamed(
    plan: JobPlan, gateway: Gateway, sink: RecordSink | None, base_url: str | None
) -> JobResult:
    done = resume_records(plan, base_url)
    if plan.run.resume_failed:
        done = ask_again(plan, done, failed_call, FAILED_AGAIN)
    write_facts(plan)  # once the transcript is this job's to write
    result = JobResult(failed_score=plan.run.failed_score)
    judge = judge_for_job(
        plan.judge,
        plan.run,
        plan.conversations,
        gateway,
        plan.info.output_dir,
        result.judged,
    )
    # the judge's calls still out when the answers are done are waited for (cancelled on error)
    async with judge or contextlib.nullcontext():
        if judge is not None:  # answers a killed run wrote before their judge was asked
            judge.submit(done.values())
        with open_writer(plan.transcript) as writer:
            runner = JobRunner(
                plan, gateway, writer, result, done, Recorder(plan, base_url), sink, judge
            )
            # A fixed pool of workers takes conversations in turn: per-call state (prompts,
            # retry state, coroutine frames) exists only for what is about to be sent, not
            # for every call of a 20,000-call sweep at once.
            pending = ((c, s) for s in range(plan.run.repeat) for c in plan.conversations)

            async def worker() -> None:
                for conversation, sample in pending:
                    await runner.ask(conversation, sample)

            workers = min(len(plan.conversations) * plan.run.repeat, 2 * gateway.concurrency)
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(worker())
            except* TranscriptWriteError as failed:
                raise failed.exceptions[0] from None
    return result


class Executor:
    """An event loop thread with a Gateway and a progress line; use as a context manager.

    ``held=True`` starts it with requests held back until ``release()``: the runner launcher
    sets up the first jobs of a sweep before their calls go out, so that the CPU-bound
    set-up does not compete with the first wave of calls for the interpreter.
    """

    def __init__(
        self, concurrency: int, cache: CacheSettings, progress: bool = True, held: bool = False
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="runner-loop", daemon=True
        )
        self._thread.start()
        self._jobs: set[concurrent.futures.Future[JobResult]] = set()
        self._jobs_lock = threading.Lock()
        cache_dir = Path(cache.dir).expanduser().resolve()
        response_cache = ResponseCache(cache_dir) if cache.enabled else None
        self.progress = Progress(progress)
        self.gateway: Gateway = self._call(self._make_gateway(concurrency, response_cache, held))

    @staticmethod
    async def _make_gateway(concurrency: int, cache: ResponseCache | None, held: bool) -> Gateway:
        gateway = Gateway(concurrency, cache)
        if held:
            gateway.hold()
        return gateway

    def release(self) -> None:
        """Let the requests of a ``held`` executor go out (see ``Gateway.hold``)."""
        self._loop.call_soon_threadsafe(self.gateway.release)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, plan: JobPlan) -> concurrent.futures.Future[JobResult]:
        """Start a job's calls; the future completes when its last record is written."""
        self._loop.call_soon_threadsafe(self.progress.add_calls, plan.calls)
        job = asyncio.run_coroutine_threadsafe(
            execute_job(plan, self.gateway, self.progress), self._loop
        )
        with self._jobs_lock:
            self._jobs.add(job)
        job.add_done_callback(self._forget)
        return job

    def _forget(self, job: concurrent.futures.Future[JobResult]) -> None:
        with self._jobs_lock:
            self._jobs.discard(job)

    def cancel(self) -> None:
        """Stop every job still running (Ctrl-C): calls in flight are dropped, records already
        written stay, and whoever waits on a job gets ``CancelledError``."""
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()

    def run(self, plan: JobPlan) -> JobResult:
        return self.submit(plan).result()

    def close(self) -> None:
        if not self._loop.is_running():
            return
        self.cancel()
        self.release()
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self.progress.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        if self.gateway.cache is not None:
            self.gateway.cache.close()

    async def _shutdown(self) -> None:
        """End every task still on the loop (a cancelled job's calls unwinding) and wait for
        them, then close the clients: a loop stopped with tasks pending would have them
        destroyed mid-flight ("Task was destroyed but it is pending")."""
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.gateway.aclose()
        await self._loop.shutdown_asyncgens()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Set by the command line, whose process ends with its run or sweep (see ``settled_heap``).
process_ends_with_sweep = False


@contextlib.contextmanager
def settled_heap() -> Iterator[None]:
    """Keep the garbage collector off what set-up left behind while the calls run.

    By the first call a sweep holds its jobs' configs, tens of thousands of OmegaConf
    objects, and each full collection walks them all: one that lands while the first
    requests go out stalls the event loop (20 jobs on 2 cores: the 32nd of the first 32
    requests left ~0.1 s after the first, against ~5 ms with the heap frozen). Everything
    is frozen (``gc.freeze``: out of the collector's sight) until the calls are done, then
    given back, garbage among it included; a ``gc.collect`` first would cost ~0.1 s. In the
    command line's process, which ends with the sweep, it stays frozen: the full collection
    that would free it (~0.5 s for 200 jobs) would only come before the OS frees it all.
    """
    gc.freeze()
    try:
        yield
    finally:
        if not process_ends_with_sweep:
            gc.unfreeze()
