"""The command line: ``python -m runner [-m] key=value ...``, and ``python -m runner init``.

A thin Hydra entry: compose, validate, plan, hand the plan to an executor. Expected failures
(bad keys and values, unknown presets, missing files or keys, an output dir in use) print
one line and exit 2; a run or sweep in which every call failed says why in one line and
exits 3; anything else keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn, cast

from omegaconf import DictConfig, OmegaConf

from runner.analysis.overrides import experiment_overrides
from runner.base.errors import Abort, RunnerError
from runner.cli.hydra_setup import cli_trees, register_resolvers, register_schema, run_trees
from runner.cli.sweep import active_sweep
from runner.core.estimate import estimate_job, format_estimates, job_label
from runner.core.executor import Executor
from runner.core.files import CONF_DIR
from runner.core.job import JobResult
from runner.core.plan import JobInfo, plan_job
from runner.core.validation import validate

log = logging.getLogger("runner")
EXIT_USAGE = 2
EXIT_ALL_FAILED = 3  # every call of the run or sweep failed: nothing came back
EXIT_INTERRUPTED = 130  # what a shell reports for a command ended by Ctrl-C (128 + SIGINT)
_cli_pid: int | None = None  # the process main() runs in; a launcher may run jobs in others


def task(cfg: DictConfig) -> float | None:
    """Hydra's task function: one job. Returns the job's mean score (for optimizing sweepers)."""
    from hydra.core.hydra_config import HydraConfig

    from runner.cli.callbacks import take_checked

    hydra_cfg = HydraConfig.get()
    info = JobInfo(
        output_dir=Path(hydra_cfg.runtime.output_dir),
        job=OmegaConf.select(cast(DictConfig, hydra_cfg), "job.num", default=None),
        overrides=experiment_overrides(hydra_cfg.overrides.task),
    )
    sweep = active_sweep()
    if sweep is None:
        try:
            plan = take_checked()  # the run's start planned it already
            if plan is None:
                run = validate(cfg)
                plan = plan_job(run, info, not run.dry_run, run_trees(hydra_cfg))
            plan = plan.placed(info)
            run = plan.run
            if run.dry_run:
                label = job_label(info.overrides, run.model.name)
                print(format_estimates([estimate_job(plan, label)]), flush=True)
                return None
            with Executor(run.concurrency, run.cache, run.progress) as own:
                result = own.run(plan)
        except RunnerError as exc:
            if os.getpid() != _cli_pid:
                # a job in a process of its own (submitit): exiting here would only end that
                # process; its launcher carries the error back to the CLI, which says it
                raise
            # A single run: say it in one line now; Hydra would add its own report around it.
            _fail(str(exc))
    else:  # a job of a sweep under the runner launcher, which validated it already
        checked = sweep.checked.pop(info.job, None) if info.job is not None else None
        plan = plan_job(checked or validate(cfg), info, trees=run_trees(hydra_cfg))
        with sweep.gate.released():
            result = sweep.executor.run(plan)
    _report(plan.transcript, result)
    return result.mean_score


def _report(path: Path, result: JobResult) -> None:
    parts = [f"{result.calls} records", f"{result.errors} errors"]
    if result.mean_score is not None:
        parts.append(f"mean score {result.mean_score:.3f}")
    log.info("%s -> %s", ", ".join(parts), path)


def main() -> None:
    """Entry point of ``python -m runner``."""
    if sys.argv[1:2] == ["init"]:  # a command of its own, before Hydra reads the arguments
        from runner.cli.init import main as init

        sys.exit(init(sys.argv[2:]))
    if sys.argv[1:2] == ["judge"]:  # grade a finished run or sweep again
        from runner.cli.judge_command import main as rejudge

        sys.exit(rejudge(sys.argv[2:]))
    global _cli_pid
    _cli_pid = os.getpid()
    from runner.core import executor  # the module: this process ends with its run or sweep

    executor.process_ends_with_sweep = True
    full_errors = bool(os.environ.get("HYDRA_FULL_ERROR"))
    # Hydra would print its own multi-line report; let errors reach us and say them in one line.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    register_schema()
    register_resolvers()
    import hydra
    import yaml
    from hydra._internal.utils import get_args_parser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from runner.cli.diagnostics import describe
    from runner.cli.hydra_setup import check_group_choices

    entry = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)
    try:
        args = get_args_parser().parse_args()
        check_group_choices(args.overrides, cli_trees(args.config_dir, args.config_path))
        entry()
    except (RunnerError, HydraException, OmegaConfBaseException, yaml.YAMLError) as exc:
        if full_errors:
            raise
        _fail(describe(exc))
    except OSError as exc:
        # A path that cannot be written (an output dir that is a file, or read-only) is the
        # user's to fix; an OSError without a path is not, and keeps its traceback.
        if full_errors or exc.filename is None:
            raise
        _fail(describe(exc))
    except KeyboardInterrupt:
        print(
            "runner: interrupted: the records written so far are kept; run the same command "
            "with resume=true to finish",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except Abort as exc:  # an expected failure in a Hydra callback (a locked output dir)
        if full_errors:
            raise
        _fail(str(exc.error))
    _exit_if_all_failed()


def _exit_if_all_failed() -> None:
    """When every call failed, end with one line saying why and a status scripts can test."""
    from runner.cli.callbacks import take_outcome

    outcome = take_outcome()
    if outcome is not None and outcome.all_failed:
        print(f"runner: error: {outcome.failure}", file=sys.stderr, flush=True)
        sys.exit(EXIT_ALL_FAILED)


def _fail(message: str) -> NoReturn:
    """Say an expected failure in one line and exit with the usage status; an output dir this
    start made and left empty of records goes (see ``discard_failed_start``)."""
    from runner.cli.callbacks import discard_failed_start

    discard_failed_start()
    print(f"runner: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)
