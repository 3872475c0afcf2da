"""The Hydra callback around a run or sweep: it locks the output dir while the process works
in it, and at the end prints the summary table and writes ``summary.csv`` and
``report.html``, all built from the transcripts on disk (so any launcher works)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from runner.errors import Abort, OutputLocked
from runner.lock import lock_dir
from runner.summary import (
    Outcome,
    find_transcripts,
    format_table,
    outcome,
    summarize,
    write_summary,
)

log = logging.getLogger("runner")
_last: Outcome | None = None


class SummaryCallback(Callback):
    """Selected in ``conf/config.yaml`` under ``hydra.callbacks.summary``."""

    def __init__(self) -> None:
        self._locks = contextlib.ExitStack()

    def __reduce__(self) -> tuple[type[SummaryCallback], tuple[()]]:
        # A multi-process launcher (submitit) pickles the callbacks into each job's process:
        # the locks stay with the process that took them, and a job starts holding none.
        return (type(self), ())

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # before Hydra writes .hydra/ into the run dir: a second process must not overwrite it
        self._lock(Path(str(config.hydra.run.dir)), "hydra.run.dir")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        with self._locks:
            job_return = kwargs.get("job_return")
            if job_return is None or job_return.hydra_cfg is None:
                return
            finish(Path(job_return.hydra_cfg.hydra.runtime.output_dir), _dry(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._lock(Path(str(config.hydra.sweep.dir)), "hydra.sweep.dir")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        with self._locks:
            finish(Path(str(config.hydra.sweep.dir)), _dry(config))

    def _lock(self, directory: Path, what: str) -> None:
        try:
            self._locks.enter_context(lock_dir(directory, what))
        except OutputLocked as exc:
            raise Abort(exc) from None  # Hydra would turn an Exception here into a warning


def _dry(config: DictConfig) -> bool:
    return bool(OmegaConf.select(config, "dry_run", default=False))


def finish(path: Path, dry_run: bool = False) -> Outcome | None:
    """Print the per-job table and write ``summary.csv`` and ``report.html`` into ``path``.

    Returns the totals, also kept for ``take_outcome``; None when there is nothing to sum up.
    """
    global _last
    _last = None
    if dry_run or not path.is_dir() or not find_transcripts(path):
        return None
    from runner.report import write_report

    rows = summarize(path)
    _last = result = outcome(path, rows)  # first: Hydra would hide a failure below as a warning
    csv_path = write_summary(path, rows)
    report = write_report(path)
    print(format_table(rows), flush=True)
    log.info("summary: %s, report: %s", csv_path, report)
    return result


def take_outcome() -> Outcome | None:
    """The totals of the run or sweep ``finish`` last summed up in this process, once."""
    global _last
    last, _last = _last, None
    return last
