"""The ``runner`` Hydra launcher: all jobs of a sweep share one event loop and one limit.

Hydra still sets up each job as usual (composition, output dir, ``.hydra/``, logging,
callbacks), one job at a time, and each job still gets its own transcript; only the API
calls run concurrently, under the sweep's shared concurrency limit, rate limits, cache and
progress line. Every job's config is composed and validated before the first call, and
the calls go out once Hydra has set up every job: set-up is CPU-bound and, run alongside the
calls, it would delay them.
"""

import copy
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write

from runner.config import RunConfig
from runner.errors import ConfigError, RunnerError

log = logging.getLogger(__name__)

# What a sweep runs under as a whole, so it cannot differ between its jobs.
SWEEP_WIDE = ("concurrency", "cache.enabled", "cache.dir", "progress")


@dataclass
class RunnerLauncherConf:
    _target_: str = "hydra_plugins.runner_launcher.runner_launcher.RunnerLauncher"


ConfigStore.instance().store(
    group="hydra/launcher", name="runner", node=RunnerLauncherConf, provider="runner"
)


class RunnerLauncher(Launcher):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        _memoize_sweep_configs(hydra_context)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from runner.lock import lock_dir

        assert self.config is not None
        # The summary callback holds it already when configured (the lock is reentrant).
        with lock_dir(Path(str(self.config.hydra.sweep.dir)), "hydra.sweep.dir"):
            return self._launch(job_overrides, initial_job_idx)

    def _launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from runner.config import validate
        from runner.estimate import estimate_job, format_estimates, job_label
        from runner.job import JobInfo, plan_job
        from runner.sweep import (
            Executor,
            HydraGate,
            set_active_sweep,
            settled_heap,
        )

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        n = len(job_overrides)
        log.info("Launching %d job%s in one event loop", n, "" if n == 1 else "s")

        configs: list[DictConfig] = []
        estimates = []
        settings = None
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            run = validate(_task_config(sweep_config))
            # every job is checked before any call
            plan = plan_job(run, JobInfo(output_dir=Path(".")), check_credentials=not run.dry_run)
            label = job_label(list(filter_overrides(overrides)), run.model.name)
            estimates.append(estimate_job(plan, f"#{idx} {label}"))
            settings = settings or run
            _check_sweep_wide(settings, run, idx)
            configs.append(sweep_config)

        if settings is not None and settings.dry_run:
            print(format_estimates(estimates), flush=True)
            return []

        gate = HydraGate(save_state=_save_job_state)
        cwd, hydra_cfg = os.getcwd(), HydraConfig.instance().cfg
        runs: list[JobReturn | None] = [None] * len(configs)
        # One limit for the whole sweep: concurrency, cache and progress are the same in every job.
        executor = (
            Executor(settings.concurrency, settings.cache, settings.progress, held=True)
            if settings is not None
            else None
        )
        set_active_sweep(None if executor is None else (executor, gate))
        threads: list[threading.Thread] = []
        try:
            for i, sweep_config in enumerate(configs):
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._run_one,
                    name=f"runner-job-{i}",
                    args=(gate, ready, sweep_config, runs, i),
                    daemon=True,  # a second Ctrl-C must not leave the process waiting on them
                )
                thread.start()
                ready.wait()
                threads.append(thread)
            # every job is set up (or failed) and waits on its calls: send them all
            with settled_heap():
                if executor is not None:
                    executor.release()
                for thread in threads:
                    thread.join()
        except BaseException:  # Ctrl-C: end every job now (as failed, its callbacks run)
            if executor is not None:
                executor.cancel()
            for thread in threads:
                thread.join(timeout=30)
            raise
        finally:
            set_active_sweep(None)
            if executor is not None:
                executor.close()
            os.chdir(cwd)  # with hydra.job.chdir, each job left the last one's dir behind
            HydraConfig.instance().cfg = hydra_cfg
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        done = [r for r in runs if r is not None]
        for ret in done:  # an expected failure is said in one line by the CLI, not as a report
            if ret.status == JobStatus.FAILED and isinstance(ret._return_value, RunnerError):
                raise ret._return_value
        return done

    def _run_one(
        self,
        gate: object,
        ready: threading.Event,
        config: DictConfig,
        runs: list[JobReturn | None],
        i: int,
    ) -> None:
        from runner.sweep import HydraGate

        assert isinstance(gate, HydraGate)
        assert self.hydra_context is not None and self.task_function is not None
        gate.enter(ready)
        try:
            runs[i] = run_job(
                hydra_context=self.hydra_context,
                task_function=self.task_function,
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        finally:
            gate.exit()


def _check_sweep_wide(first: RunConfig, run: RunConfig, idx: int) -> None:
    """Settings of the whole sweep (one event loop, one cache) must be the same in every job."""
    for key in SWEEP_WIDE:
        theirs, ours = attrgetter(key)(first), attrgetter(key)(run)
        if ours != theirs:
            raise ConfigError(
                f"{key} differs between the jobs of this sweep ({theirs} in the first, {ours} "
                f"in #{idx}): every job of a sweep runs under one {key}; set it once, or run "
                "one sweep per value"
            )


def _save_job_state() -> Callable[[], None]:
    """What puts back a job's Hydra state (its ``HydraConfig``, working dir and log file)."""
    hydra_cfg, cwd = HydraConfig.instance().cfg, os.getcwd()

    def restore() -> None:
        HydraConfig.instance().cfg = hydra_cfg
        os.chdir(cwd)
        if hydra_cfg is not None:
            # the config Hydra keeps is a DictConfig, though it is annotated as HydraConf
            hydra = hydra_cfg.hydra  # type: ignore[attr-defined]
            configure_log(hydra.job_logging, hydra.verbose)

    return restore


def _memoize_sweep_configs(hydra_context: HydraContext) -> None:
    """Compose each job's config once, not twice.

    Hydra's sweeper composes every job to check the batch, then the launcher composes each
    again to run it; composition is ~0.1 s a job, the bulk of a large sweep's start-up. The
    loader is shared, so remembering its answers (copied out, as callers modify them) halves it.
    """
    loader = hydra_context.config_loader
    if getattr(loader, "_runner_memo", None) is not None:
        return
    compose = loader.load_sweep_config
    memo: dict[tuple[int, tuple[str, ...]], DictConfig] = {}

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = (id(master_config), tuple(sweep_overrides))
        if key not in memo:
            memo[key] = compose(master_config, sweep_overrides)
        return copy.deepcopy(memo[key])

    loader._runner_memo = memo  # type: ignore[attr-defined]
    loader.load_sweep_config = load_sweep_config  # type: ignore[method-assign]


def _task_config(sweep_config: DictConfig) -> DictConfig:
    task_cfg = copy.deepcopy(sweep_config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg
