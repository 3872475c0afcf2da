"""The ``runner`` Hydra launcher: all jobs of a sweep share one event loop and one limit.

Each job is set up as Hydra's ``run_job`` sets it up (output dir, ``.hydra/``, logging,
callbacks), one job at a time, and each job gets its own transcript; only the API calls run
concurrently, under the sweep's shared concurrency limit, rate limits, cache and progress
line. Every job's config is composed and validated before the first call. Composing is
Hydra's, once per choice of presets (``SweepComposer``), and set-up copies configs directly
(``job_setup``): a few ms a job instead of ~0.1 s. The calls go out once the jobs set up hold
enough of them to fill every slot twice; the rest are set up as the jobs before them finish.
"""

import contextlib
import gc
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.runner_launcher.job_setup import (
    clone,
    plain,
    run_job,
    task_config,
    task_view,
)
from runner.base.errors import ConfigError, RunnerError
from runner.base.schema import RunConfig

log = logging.getLogger(__name__)

# What a sweep runs under as a whole, so it cannot differ between its jobs (a dry run prints
# one table for the sweep and calls nothing).
SWEEP_WIDE = ("concurrency", "cache.enabled", "cache.dir", "progress", "dry_run")


@dataclass
class JobCheck:
    """What the launcher keeps of a job it checked: its calls and its sweep-wide settings;
    the validated config for the first job checked (the sweep's settings); and for the first
    ``SweepComposer.MAX_KEPT``, the composed config to run the job with, and the validated
    one too when the job would validate the same as it runs (``fixed``)."""

    calls: int
    wide: dict[str, Any]
    run: RunConfig | None
    fixed: bool = False
    config: DictConfig | None = None


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
        _composer_for(hydra_context).checker = _check_job

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from runner.core.lock import lock_dir

        assert self.config is not None
        # The summary callback holds it already when configured (the lock is reentrant).
        with lock_dir(Path(str(self.config.hydra.sweep.dir)), "hydra.sweep.dir"):
            return self._launch(job_overrides, initial_job_idx)

    def _launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from runner.cli.hydra_setup import job_trees
        from runner.cli.sweep import ActiveSweep, HydraGate, set_active_sweep
        from runner.core.estimate import estimate_job, format_estimates, job_label
        from runner.core.executor import Executor, settled_heap
        from runner.core.plan import JobInfo, plan_job
        from runner.core.validation import validate

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        n = len(job_overrides)
        log.info("Launching %d job%s in one event loop", n, "" if n == 1 else "s")

        calls: list[int] = []  # each job's calls
        kept: list[JobCheck | None] = []  # each job's check, until the job is set up
        estimates = []
        settings: RunConfig | None = None
        wide: dict[str, Any] = {}
        composer = _composer_for(self.hydra_context)
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            # every job is checked before any call: most were, as the sweeper checked them
            check = composer.checked.pop(tuple(overrides), None)
            if check is None or (settings is None and check.run is None):
                composed = self._compose(overrides, idx)
                run = validate(task_config(composed))
                check_credentials = not run.dry_run
                trees = job_trees(composed)
                plan = plan_job(run, JobInfo(output_dir=Path(".")), check_credentials, trees)
                del composed
                check = JobCheck(plan.calls, _sweep_wide(run), run)
                if run.dry_run:  # counting every prompt's tokens is for the dry run's table
                    label = job_label(list(filter_overrides(overrides)), run.model.name)
                    estimates.append(estimate_job(plan, f"#{idx} {label}"))
            settings = settings or check.run
            wide = wide or check.wide
            _check_sweep_wide(wide, check.wide, idx)
            calls.append(check.calls)
            kept.append(check)
        composer.checked.clear()

        if settings is not None and settings.dry_run:
            print(format_estimates(estimates), flush=True)
            return []

        gate = HydraGate(save_state=_save_job_state)
        active: ActiveSweep | None = None
        cwd, hydra_cfg = os.getcwd(), HydraConfig.instance().cfg
        runs: list[JobReturn | None] = [None] * len(calls)
        # One limit for the whole sweep: concurrency, cache and progress are the same in every job.
        executor = (
            Executor(settings.concurrency, settings.cache, settings.progress, held=True)
            if settings is not None
            else None
        )
        # The calls go out once every job is set up, or once the jobs set up so far have twice
        # as many calls as may be in flight: enough to keep every slot busy while the rest
        # are set up (set-up is a few ms a job) and finish. From then on a job is set up as
        # the jobs before it finish, keeping that many calls in jobs set up and not finished,
        # so that a sweep of thousands of jobs neither waits for all of them nor holds them
        # all in memory at once (nor has the garbage collector walk them all, again and again).
        release_at = 2 * settings.concurrency if settings is not None else 0
        in_flight = _InFlight(release_at)
        if executor is not None:
            active = ActiveSweep(executor, gate)
        set_active_sweep(active)
        threads: list[threading.Thread] = []
        heap = contextlib.ExitStack()
        try:
            queued, released = 0, False
            for i, overrides in enumerate(job_overrides):
                if released:
                    in_flight.wait_for_room(calls[i])
                in_flight.add(calls[i])
                with gate.held():  # jobs set up earlier may be finishing in Hydra's code
                    check, kept[i] = kept[i], None
                    if check is None or check.config is None:
                        where = os.getcwd()
                        os.chdir(cwd)  # Hydra notes the dir it composes in (hydra.runtime.cwd)
                        config = self._compose(overrides, initial_job_idx + i)
                        os.chdir(where)
                    else:
                        config = check.config
                        _number(config, initial_job_idx + i)
                        if active is not None and check.fixed and check.run is not None:
                            active.checked[initial_job_idx + i] = check.run
                    del check
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._run_one,
                    name=f"runner-job-{i}",
                    args=(gate, ready, config, runs, i, in_flight.done(calls[i])),
                    daemon=True,  # a second Ctrl-C must not leave the process waiting on them
                )
                thread.start()
                ready.wait()
                threads.append(thread)
                del config
                queued += calls[i]
                if not released and (queued >= release_at or i == len(job_overrides) - 1):
                    released = True
                    heap.enter_context(settled_heap())
                    if executor is not None:
                        executor.release()
            with heap:
                for thread in threads:
                    thread.join()
        except BaseException:  # Ctrl-C: end every job now (as failed, its callbacks run)
            if executor is not None:
                executor.cancel()
            for thread in threads:
                thread.join(timeout=30)
            raise
        finally:
            heap.close()
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

    def _compose(self, overrides: Sequence[str], idx: int) -> DictConfig:
        assert self.config is not None and self.hydra_context is not None
        composer = _composer_for(self.hydra_context)
        config = composer.compose(self.config, list(overrides))
        _number(config, idx)
        return config

    def _run_one(
        self,
        gate: object,
        ready: threading.Event,
        config: DictConfig,
        runs: list[JobReturn | None],
        i: int,
        finished: Callable[[], None],
    ) -> None:
        from runner.cli.sweep import HydraGate

        assert isinstance(gate, HydraGate)
        assert self.hydra_context is not None and self.task_function is not None
        gate.enter(ready)
        try:
            ret = run_job(self.hydra_context, self.task_function, config)
            # Its callbacks have had it whole. From here Hydra and the sweepers read only its
            # status, return value and overrides, and its configs are in its .hydra/ files:
            # kept, they were ~120 KB a job to the sweep's end (1,000 jobs: ~120 MB).
            ret.cfg = ret.hydra_cfg = None
            runs[i] = ret
        finally:
            gate.exit()
            finished()


class _InFlight:
    """The jobs set up and not finished, and their calls. A job is set up when its calls fit
    in ``room`` with theirs, or when fewer than two jobs are running: a job larger than the
    room then still has the next one's calls queued behind its last ones, so the slots stay
    busy from one job to the next."""

    def __init__(self, room: int) -> None:
        self._room = room
        self._jobs = 0
        self._calls = 0
        self._changed = threading.Condition()

    def add(self, calls: int) -> None:
        with self._changed:
            self._jobs += 1
            self._calls += calls

    def done(self, calls: int) -> Callable[[], None]:
        def finished() -> None:
            with self._changed:
                self._jobs -= 1
                self._calls -= calls
                self._changed.notify_all()

        return finished

    def has_room(self, calls: int) -> bool:
        with self._changed:
            return self._fits(calls)

    def wait_for_room(self, calls: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._fits(calls))

    def _fits(self, calls: int) -> bool:
        return self._jobs < 2 or self._calls + calls <= self._room


def _number(config: DictConfig, idx: int) -> None:
    """Give a composed job its number, as Hydra's launchers do (opening only the node they
    set: a flag set on the root is taken back from every node under it)."""
    job = config.hydra.job
    with open_dict(job):
        job.id = idx
        job.num = idx


def _check_job(config: DictConfig) -> JobCheck | None:
    """Validate and plan a job the sweeper composed to check it, as the launcher would; None
    for a dry run (its estimate is made from the job composed again)."""
    from runner.cli.hydra_setup import interpolates, job_trees
    from runner.core.plan import JobInfo, plan_job
    from runner.core.validation import validate

    with task_view(config) as task:
        run = validate(task)
        # Without an interpolation (``${...}``) the job's values are the same when it runs
        # (under its own Hydra config, working dir and environment) as here.
        fixed = not interpolates(plain(task))
    if run.dry_run:
        return None
    plan = plan_job(run, JobInfo(output_dir=Path(".")), trees=job_trees(config))
    return JobCheck(plan.calls, _sweep_wide(run), run, fixed)


def _sweep_wide(run: RunConfig) -> dict[str, Any]:
    return {key: attrgetter(key)(run) for key in SWEEP_WIDE}


def _check_sweep_wide(first: dict[str, Any], job: dict[str, Any], idx: int) -> None:
    """Settings of the whole sweep (one event loop, one cache) must be the same in every job."""
    for key in SWEEP_WIDE:
        theirs, ours = first[key], job[key]
        if ours != theirs:
            raise ConfigError(
                f"{key} differs between the jobs of this sweep ({theirs} in the first, {ours} "
                f"in #{idx}): every job of a sweep runs under one {key}; set it once, or run "
                "one sweep per value"
            )


def _save_job_state() -> Callable[[], None]:
    """What puts back a job's Hydra state (its ``HydraConfig``, working dir and logging)."""
    hydra_cfg, cwd = HydraConfig.instance().cfg, os.getcwd()
    logging_state = _save_logging()

    def restore() -> None:
        HydraConfig.instance().cfg = hydra_cfg
        os.chdir(cwd)
        logging_state()

    return restore


def _save_logging() -> Callable[[], None]:
    """What puts back the loggers as they are now: the job's handlers (its log file), levels
    and flags, as configuring its ``hydra.job_logging`` again would (~1 ms less a job).

    The handlers the next job's configuration closed open again as they write (a file
    handler reopens its file to append); the ones configured after this point are closed as
    Hydra closes them, when the next job configures its own.
    """
    manager = logging.Logger.manager
    loggers = [logging.root, *manager.loggerDict.values()]
    saved = [
        (lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled)
        for lg in loggers
        if isinstance(lg, logging.Logger)
    ]

    def restore() -> None:
        for lg, level, handlers, propagate, disabled in saved:
            lg.level, lg.propagate, lg.disabled = level, propagate, disabled
            lg.handlers = list(handlers)  # configuring logging empties the list in place
        logging.root.setLevel(logging.root.level)  # and the levels each logger cached go

    return restore


class SweepComposer:
    """Composes the jobs of a sweep as Hydra's own loader does, once per choice of presets.

    Hydra composes each job from scratch (~0.1 s: the defaults list, reading and merging the
    config files and the schema). Jobs that choose the same presets (``model=``, ``system=``,
    ...) differ only in the values they set (``sampling.seed=3``), which Hydra applies last,
    to the merged config. So each distinct choice of presets is composed once, by Hydra, and
    a job's config is a copy of it with the job's values applied by Hydra's own function and
    its overrides recorded where and as Hydra records them (``hydra.overrides``,
    ``hydra.job.override_dirname``). An override of a key Hydra reads or writes itself while
    composing (``hydra.searchpath``, ``hydra.overrides``, ``hydra.runtime``, ...) sends the
    job through Hydra's full composition, and so does any error: a bad override gets Hydra's
    own message.
    """

    # What Hydra sets after applying the values, or reads before: a value override of these
    # (or of a node holding them) would not come out the same.
    HYDRA_OWN = (
        "hydra.overrides",
        "hydra.runtime",
        "hydra.searchpath",
        "hydra.job.name",
        "hydra.job.config_name",
        "hydra.job.override_dirname",
        "hydra.job.env_set",
        "hydra.job.env_copy",
    )
    MAX_BASES = 64  # compositions kept (one per choice of presets, ~150 KB each)
    # Jobs whose config, composed to check them, is kept to run them with (~150 KB each);
    # the jobs past these are composed again as the launcher reaches them.
    MAX_KEPT = 256
    FREEZE_EVERY = 16

    def __init__(self, compose: Callable[[DictConfig, list[str]], DictConfig], loader: Any) -> None:
        self._compose = compose  # Hydra's ``load_sweep_config``
        self._repository = loader.repository
        self._parser = OverridesParser.create()
        self._parsed: dict[str, Override] = {}
        self._groups: dict[str, bool] = {}
        self._bases: OrderedDict[tuple[int, tuple[str, ...]], DictConfig] = OrderedDict()
        # The launcher's check of each job the sweeper composed, by its overrides: the
        # launcher need not compose it again to check it. Only the first keeps its config.
        self.checker: Callable[[DictConfig], JobCheck | None] | None = None
        self.checked: dict[tuple[str, ...], JobCheck] = {}

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        """In the place of the loader's: what a sweeper calls to check its batch."""
        cfg = self.compose(master_config, sweep_overrides)
        if self.checker is not None:
            check = self.checker(cfg)
            if check is not None:
                keep = len(self.checked) < self.MAX_KEPT
                if keep:
                    # as composed: what checking it cached (``${now:}``) is taken back
                    OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
                    check.config = cfg
                    if len(self.checked) % self.FREEZE_EVERY == 0:
                        # They live until their jobs run: out of the collector's sight (see
                        # ``runner.core.executor.settled_heap``, which gives them back), else each
                        # full collection here walks all those kept so far (~0.6 s in 200 jobs).
                        gc.freeze()
                if self.checked and not (keep and check.fixed):
                    check.run = None
                self.checked[tuple(sweep_overrides)] = check
        return cfg

    def compose(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        """The config Hydra's ``load_sweep_config`` returns for these arguments, anew."""
        master, overrides = master_config, list(sweep_overrides)
        try:
            parsed = [self._parse(text) for text in overrides]
        except Exception:  # Hydra says what is wrong with it
            return self._compose(master, overrides)
        choices = tuple(o.input_line or "" for o in parsed if self._chooses_preset(o))
        values = [o for o in parsed if not self._chooses_preset(o)]
        if OmegaConf.select(master, "hydra.searchpath") or any(
            o.is_sweep_override() or self._hydra_own(o.key_or_group) for o in values
        ):
            return self._compose(master, overrides)
        base = self._base(master, choices)
        try:
            cfg = clone(base)
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            self._record(master, cfg, parsed)
        except Exception:
            return self._compose(master, overrides)
        OmegaConf.copy_cache(from_config=master, to_config=cfg)
        return cfg

    def _parse(self, text: str) -> Override:
        parsed = self._parsed.get(text)
        if parsed is None:
            (parsed,) = self._parser.parse_overrides([text])
            self._parsed[text] = parsed
        return parsed

    def _chooses_preset(self, override: Override) -> bool:
        """Whether Hydra's defaults list takes it (a config group), as ``Overrides`` decides."""
        key = override.key_or_group
        if key not in self._groups:
            self._groups[key] = bool(self._repository.group_exists(key))
        return self._groups[key] and not isinstance(override.value(), dict)

    def _hydra_own(self, key: str) -> bool:
        return any(
            key == own or key.startswith(own + ".") or own.startswith(key + ".")
            for own in self.HYDRA_OWN
        )

    def _base(self, master: DictConfig, choices: tuple[str, ...]) -> DictConfig:
        key = (id(master), choices)
        base = self._bases.get(key)
        if base is None:
            base = self._bases[key] = self._compose(master, list(choices))
            if len(self._bases) > self.MAX_BASES:
                self._bases.popitem(last=False)
        else:
            self._bases.move_to_end(key)
        return base

    @staticmethod
    def _record(master: DictConfig, cfg: DictConfig, parsed: list[Override]) -> None:
        """Note the overrides as ``ConfigLoaderImpl._load_configuration_impl`` does."""
        hydra_lines = plain(master.hydra.overrides.hydra)  # not resolved
        assert isinstance(hydra_lines, list)
        task_lines: list[str] = []
        app = []
        for override in parsed:
            if override.is_hydra_override():
                hydra_lines.append(override.input_line)
            else:
                task_lines.append(override.input_line or "")
                app.append(override)
        if hydra_lines != plain(cfg.hydra.overrides.hydra):
            cfg.hydra.overrides.hydra = hydra_lines  # most jobs' are their base's already
        cfg.hydra.overrides.task = task_lines
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=app,
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )


def _composer_for(hydra_context: HydraContext) -> SweepComposer:
    """The loader's composer, put in the place of its ``load_sweep_config``.

    Hydra's sweeper composes every job to check the batch before the launcher composes each
    again to run it; both go through the composer.
    """
    loader = hydra_context.config_loader
    composer = getattr(loader, "_runner_composer", None)
    if composer is None:
        composer = SweepComposer(loader.load_sweep_config, loader)
        loader._runner_composer = composer  # type: ignore[attr-defined]
        loader.load_sweep_config = composer.load_sweep_config  # type: ignore[method-assign]
    assert isinstance(composer, SweepComposer)
    return composer
