"""Running jobs' calls in one event loop, on a thread of its own, under one shared Gateway.

A single run uses one ``Executor`` for its one job; the runner launcher uses one for a whole
sweep, so every job shares the concurrency limit, rate limits, cache and progress line.
Callers on any thread (Hydra's job threads, a notebook cell) submit a plan and wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gc
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runner.core.config import CacheSettings, RunConfig
from runner.core.job import JobPlan, JobResult, execute_job
from runner.core.progress import Progress
from runner.wire.cache import ResponseCache
from runner.wire.gateway import Gateway

# One line a request from the HTTP client drowns everything else in a sweep of thousands.
logging.getLogger("httpx2").setLevel(logging.WARNING)


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


class HydraGate:
    """Lets one job thread at a time run Hydra's own code (set-up, callbacks, clean-up), which
    keeps global state; the jobs' calls run outside it, all at once.

    Hydra's global state (its config singleton, the working directory, the log file) is the
    last job's set-up by the time a job steps back in to finish. ``save_state`` is called as a
    job steps out and returns what puts that job's state back as it steps in again.
    """

    def __init__(self, save_state: Callable[[], Callable[[], None]] | None = None) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._save_state = save_state

    def enter(self, ready: threading.Event | None = None) -> None:
        self._lock.acquire()
        self._local.held = True
        if ready is not None:
            self._local.ready = ready

    def exit(self) -> None:
        if getattr(self._local, "held", False):
            self._local.held = False
            self._lock.release()
        ready = getattr(self._local, "ready", None)
        if ready is not None:
            ready.set()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Run Hydra's code on this thread (composing a job) while no job runs its own."""
        with self._lock:
            yield

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Step out of Hydra's code while this job's calls run; step back in to finish."""
        restore = self._save_state() if self._save_state is not None else None
        self.exit()
        try:
            yield
        finally:
            self.enter()
            if restore is not None:
                restore()


@dataclasses.dataclass
class ActiveSweep:
    """What a launcher set up for the sweep in progress: the executor its jobs' calls share,
    the gate to Hydra's code, and the jobs it validated already whose config would validate
    the same when they run (by job number; each taken once)."""

    executor: Executor
    gate: HydraGate
    checked: dict[int, RunConfig] = dataclasses.field(default_factory=dict)


_sweep: ActiveSweep | None = None


def active_sweep() -> ActiveSweep | None:
    """The sweep in progress under the runner launcher, if any."""
    return _sweep


def set_active_sweep(sweep: ActiveSweep | None) -> None:
    global _sweep
    _sweep = sweep
