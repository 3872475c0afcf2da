"""A sweep under the runner launcher, as its jobs see it: the executor all their calls share,
the gate around Hydra's own code (which keeps global state), and the jobs the launcher has
validated already."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator

from runner.base.schema import RunConfig
from runner.core.executor import Executor


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
