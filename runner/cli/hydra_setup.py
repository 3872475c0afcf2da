"""What the runner tells Hydra and reads back from it: the schema in the ConfigStore, the
``${runner.*:}`` resolvers of ``--help``, the config trees of a run, and the check that a
preset choice names a file inside its group's folder."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner.base.errors import ConfigError
from runner.base.schema import MISSING, RunConfig
from runner.core.files import CONF_DIR, config_trees, user_conf_dir


def register_schema() -> None:
    """Register the schema in Hydra's ConfigStore (the packaged ``runner.yaml`` names it first)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="runner_schema", node=RunConfig)


def register_resolvers() -> None:
    """The ``${runner.*:}`` resolvers ``--help`` uses to say where the presets are."""

    def user_tree() -> str:
        found = user_conf_dir()
        if found is not None:
            return f"{found} (searched before the packaged tree)"
        return f"./conf, searched first (none in {Path.cwd()}: `python -m runner init` writes one)"

    def searched() -> str:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
        return ", ".join(str(d) for d in run_trees(hydra_cfg))

    resolvers = {
        "runner.packaged_tree": lambda: str(CONF_DIR),
        "runner.user_tree": user_tree,
        "runner.searched_trees": searched,
    }
    for name, resolver in resolvers.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)


def run_trees(hydra_cfg: Any | None) -> list[Path]:
    """The config trees a run was composed from, in search-path order, the packaged one last.

    ``hydra_cfg`` is the run's ``hydra`` node (``HydraConfig.get()``, or ``config.hydra`` of a
    composed job): the file trees of the search path Hydra composed with (``./conf``,
    ``--config-dir``, ``--config-path``). Without one (a notebook), what a run started here
    would see (``runner.core.files.config_trees``).
    """
    sources = OmegaConf.select(hydra_cfg, "runtime.config_sources") if hydra_cfg else None
    if not sources:
        return config_trees()
    dirs = [Path(s.path) for s in sources if s.schema == "file" and s.path]
    return config_trees(dirs) if dirs else config_trees([CONF_DIR])


def job_trees(config: DictConfig) -> list[Path]:
    """``run_trees`` of a composed job's config (one that holds its ``hydra`` node)."""
    return run_trees(config.get("hydra"))


def holds_interpolation(config: DictConfig) -> bool:
    """Whether a config holds an interpolation (``${...}``) anywhere, resolved or not."""
    return interpolates(OmegaConf.to_container(config, resolve=False))


def interpolates(value: Any) -> bool:
    """Whether a config as plain containers (unresolved) holds an interpolation anywhere."""
    if isinstance(value, dict):
        return any(interpolates(v) for v in value.values())
    if isinstance(value, list):
        return any(interpolates(v) for v in value)
    return isinstance(value, str) and "${" in value


def cli_trees(config_dir: str | None, config_path: str | None) -> list[Path]:
    """The config trees Hydra will search for these command-line flags, the user's first."""
    trees = [Path(d) for d in (config_dir, config_path) if d]
    if config_path is None:
        user = user_conf_dir()
        trees = ([user] if user else []) + trees + [CONF_DIR]
    return trees


# Top-level keys of the schema that take a value; every other key without a dot (and any key
# with a folder in the config tree) names a config group (model, system, hydra/launcher, ...),
# whose choice Hydra turns into a file path.
_VALUE_KEYS = frozenset(f.name for f in dataclasses.fields(RunConfig) if f.default != MISSING)


def check_group_choices(overrides: Sequence[str], trees: Sequence[Path] | None = None) -> None:
    """Every preset chosen by ``overrides`` (``system=concise``, sweeps too) is a name inside
    its group's folder, not a path out of it.

    Hydra joins group and choice into a file path and resolves ``..``, so ``system=../../x``
    would load a YAML file from anywhere. Raises ``ConfigError`` (before Hydra reads a file);
    the message's example preset comes from the first of ``trees`` (by default those of a run
    started here) that has the group.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    trees = config_trees() if trees is None else trees
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        group = override.key_or_group
        if group == "judge.model" and not isinstance(override.value(), dict | None):
            raise ConfigError(
                f"{override.input_line}: the judge's model is a preset of conf/model/: choose it "
                f"with model@judge.model={(override.input_line or '').partition('=')[2]}"
            )
        if "." in group or (  # a value (sampling.seed=1, concurrency=4), not a preset
            group in _VALUE_KEYS and not any((Path(d) / group).is_dir() for d in trees)
        ):
            continue
        for choice in _choices(override.value()):
            if choice.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", choice):
                raise ConfigError(
                    f"{group}={choice}: a preset name must name a file in the config tree's "
                    f"{group}/ folder{_example(group, trees)}"
                )


def _choices(value: Any) -> list[str]:
    """The preset names an override's value chooses: one, a sweep's list, or a list of them."""
    items = getattr(value, "list", value)  # a ChoiceSweep holds its choices in .list
    if not isinstance(items, list):
        items = [items]
    return [str(getattr(item, "text", item)) for item in items if item is not None]


def _example(group: str, trees: Sequence[Path]) -> str:
    for directory in trees:
        presets = sorted(p.stem for p in (Path(directory) / group).glob("*.yaml"))
        if presets:
            return f", e.g. {group}={presets[0]}"
    return ""
