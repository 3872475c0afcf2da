"""The Hydra callback around a run or sweep: it checks a run's config before anything is
written, locks the output dir while the process works in it, and at the end prints the
summary table and writes ``summary.csv`` and ``report.html``, all built from the transcripts
on disk (so any launcher works). A start that fails after the output dir was made takes the
directory away again (``discard_failed_start``), unless something else is in it."""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from runner.analysis.summary import (
    Outcome,
    find_transcripts,
    format_table,
    outcome,
    summarize,
    write_summary,
)
from runner.base.errors import Abort, OutputLocked, RunnerError
from runner.base.jobfile import JOB_FILE
from runner.cli.hydra_setup import holds_interpolation, job_trees
from runner.core.lock import LOCK_NAME, lock_dir
from runner.core.plan import JobInfo, JobPlan, plan_job
from runner.core.validation import validate

log = logging.getLogger("runner")
_last: Outcome | None = None

# What a start writes into an output dir before the first record: Hydra's config copies, the
# job's log file (named by hydra.job.name), the lock, a sweep's multirun.yaml and job.json.
_HYDRA_FILES = frozenset({"config.yaml", "hydra.yaml", "overrides.yaml"})
_START_FILES = frozenset({LOCK_NAME, "multirun.yaml", JOB_FILE})


@dataclass(frozen=True)
class _Made:
    """An output dir this process made, and the first of its parents it had to make too."""

    directory: Path
    top: Path
    log_name: str


_made: list[_Made] = []


class SummaryCallback(Callback):
    """Selected in the packaged ``runner.yaml`` under ``hydra.callbacks.summary``."""

    def __init__(self) -> None:
        self._locks = contextlib.ExitStack()

    def __reduce__(self) -> tuple[type[SummaryCallback], tuple[()]]:
        # A multi-process launcher (submitit) pickles the callbacks into each job's process:
        # the locks stay with the process that took them, and a job starts holding none.
        return (type(self), ())

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _set_hydra_config(config)
        _check_run(config)  # before anything is written: a bad start leaves no directory
        # before Hydra writes .hydra/ into the run dir: a second process must not overwrite it
        self._lock(Path(str(config.hydra.run.dir)), "hydra.run.dir", config)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        _made.clear()  # the run started: what it made is its output
        with self._locks:
            job_return = kwargs.get("job_return")
            if job_return is None or job_return.hydra_cfg is None:
                return
            finish(Path(job_return.hydra_cfg.hydra.runtime.output_dir), _dry(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # The jobs' configs are checked by the launcher, which composes them (a job's values
        # are not known here); a sweep that fails there has its directory taken away again.
        _set_hydra_config(config)
        self._lock(Path(str(config.hydra.sweep.dir)), "hydra.sweep.dir", config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _made.clear()  # the sweep started: what it made is its output
        with self._locks:
            finish(Path(str(config.hydra.sweep.dir)), _dry(config))

    def _lock(self, directory: Path, what: str, config: DictConfig) -> None:
        top = _first_missing(directory.absolute())
        try:
            self._locks.enter_context(lock_dir(directory, what))
        except OutputLocked as exc:
            raise Abort(exc) from None  # Hydra would turn an Exception here into a warning
        if top is not None:  # made by this process, which holds it: no other runner is in it
            log_name = f"{OmegaConf.select(config, 'hydra.job.name', default='runner')}.log"
            _made.append(_Made(directory.absolute(), top, log_name))


def _set_hydra_config(config: DictConfig) -> None:
    """Set Hydra's config for the checks that follow, so that a ``${hydra:...}`` interpolation
    resolves as the job's will (Hydra sets it only as each job starts, after these checks)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(config)


_checked: JobPlan | None = None


def _check_run(config: DictConfig) -> None:
    """Check a single run's config, questions and credentials as its job will, and keep the
    plan for the job (``take_checked``) when its config holds no interpolation (one that
    does may resolve otherwise as the job runs: the job plans it again)."""
    global _checked
    _checked = None
    task_cfg = copy.deepcopy(config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    try:
        run = validate(task_cfg)
        trees = job_trees(config)
        plan = plan_job(run, JobInfo(output_dir=Path(".")), not run.dry_run, trees)
    except RunnerError as exc:
        raise Abort(exc) from None
    if not holds_interpolation(task_cfg):
        _checked = plan


def take_checked() -> JobPlan | None:
    """The plan of the single run this process checked as it started, once."""
    global _checked
    plan, _checked = _checked, None
    return plan


def _first_missing(directory: Path) -> Path | None:
    """The outermost of ``directory`` and its parents that does not exist yet, if any."""
    missing = None
    for path in (directory, *directory.parents):
        if path.exists() or path.is_symlink():
            break
        missing = path
    return missing


def discard_failed_start() -> list[Path]:
    """Remove the output dirs this process made for a run or sweep that failed to start.

    Only a directory holding nothing but what a start writes (``.hydra/``, the job's log
    file, ``.runner.lock``, ``multirun.yaml``) goes, then the parents made for it while they
    are empty; a directory with anything else in it (a transcript) stays. Returns what was
    removed.
    """
    removed: list[Path] = []
    while _made:
        made = _made.pop()
        if not made.directory.is_dir() or not _only_start_files(made.directory, made.log_name):
            continue
        shutil.rmtree(made.directory, ignore_errors=True)
        removed.append(made.directory)
        for parent in made.directory.parents:
            if not parent.is_relative_to(made.top):
                break
            try:
                parent.rmdir()  # only while empty: another run may have started in it
            except OSError:
                break
            removed.append(parent)
    return removed


def _only_start_files(directory: Path, log_name: str) -> bool:
    """``directory`` holds nothing a start would not have written (no record, no report)."""
    for entry in directory.iterdir():
        if entry.name == ".hydra" and entry.is_dir() and not entry.is_symlink():
            if not all(f.name in _HYDRA_FILES and f.is_file() for f in entry.iterdir()):
                return False
        elif entry.name not in _START_FILES | {log_name} or not entry.is_file():
            return False
    return True


def _dry(config: DictConfig) -> bool:
    return bool(OmegaConf.select(config, "dry_run", default=False))


def finish(path: Path, dry_run: bool = False) -> Outcome | None:
    """Print the per-job table and write ``summary.csv`` and ``report.html`` into ``path``.

    Returns the totals, also kept for ``take_outcome``; None when there is nothing to sum up.
    """
    global _last
    _last = None
    path = path.absolute()  # the paths printed below are the ones to open, from anywhere
    if dry_run or not path.is_dir() or not find_transcripts(path):
        return None
    from runner.analysis.report import write_report

    rows = summarize(path)
    _last = result = outcome(path, rows)  # first: Hydra would hide a failure below as a warning
    csv_path = write_summary(path, rows)
    report = write_report(path, rows)
    print(format_table(rows), flush=True)
    log.info("summary: %s, report: %s", csv_path, report)
    return result


def take_outcome() -> Outcome | None:
    """The totals of the run or sweep ``finish`` last summed up in this process, once."""
    global _last
    last, _last = _last, None
    return last
