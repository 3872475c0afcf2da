"""Experiments from Python (a notebook cell, a script): the same config trees as the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from runner.analysis.overrides import experiment_overrides
from runner.base.schema import RunConfig
from runner.cli.hydra_setup import check_group_choices, register_resolvers, register_schema
from runner.core.executor import Executor
from runner.core.files import CONF_DIR, config_trees
from runner.core.job import JobResult
from runner.core.plan import JobInfo, plan_job
from runner.core.validation import validate

if TYPE_CHECKING:
    import pandas as pd


def compose(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> DictConfig:
    """Compose the experiment config as ``python -m runner <overrides>`` would.

    It sees what the CLI run from the working directory sees: ``./conf`` if there is one,
    ahead of the packaged tree. ``config_dir`` replaces both, as ``--config-path`` does for
    the CLI. Raises the same errors as the CLI
    (``ConfigError`` for a preset named by a path out of its folder, e.g. ``system=../x``;
    Hydra's for unknown presets or keys; other ``ConfigError`` comes later, from ``run``).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    directory = Path(config_dir or CONF_DIR).resolve()
    check_group_choices(overrides, config_trees() if config_dir is None else [directory])
    register_schema()
    register_resolvers()  # the packaged hydra/help names them
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def run(
    cfg: DictConfig | RunConfig | Sequence[str] = (),
    output_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Run one experiment and return its records as a DataFrame (see ``load_results``; pandas
    comes with ``runner[notebook]``, and ``run_job`` does without it).

    ``cfg`` is a composed config, or a list of overrides to compose (these are then kept in
    each record's ``overrides``, less run-control keys such as ``concurrency``). Records go
    to ``output_dir``, by default ``outputs/notebook/<date>/<time>`` under the working
    directory.
    """
    from runner.analysis.results import load_results

    return load_results(run_job(cfg, output_dir)[0])


def run_job(
    cfg: DictConfig | RunConfig | Sequence[str] = (),
    output_dir: str | Path | None = None,
) -> tuple[Path, JobResult]:
    """Like ``run`` without pandas: returns the output dir and the job's totals."""
    overrides: list[str] = []
    if not isinstance(cfg, DictConfig | RunConfig):
        overrides = list(cfg)
        cfg = compose(overrides)
    settings = validate(cfg)
    if output_dir is None:
        output_dir = Path("outputs") / "notebook" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    directory = Path(output_dir).resolve()
    plan = plan_job(
        settings, JobInfo(output_dir=directory, overrides=experiment_overrides(overrides))
    )
    with Executor(settings.concurrency, settings.cache, settings.progress) as executor:
        result = executor.run(plan)
    return directory, result
