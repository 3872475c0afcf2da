"""Setting up one job of a sweep as Hydra's ``run_job`` does, with fewer and cheaper copies.

``hydra.core.utils.run_job`` (Hydra 1.3) copies a job's config four times with
``copy.deepcopy`` (the task's config, and the ``hydra`` node three times: twice in
``HydraConfig.set_config`` and once for the job's return value); OmegaConf's deep copy builds
every node through its constructor and then overwrites it, ~20 ms a job on two cores, the
bulk of a sweep's set-up, and each copy is garbage for the collector to find later. Here the
read-only ``hydra`` node is shared rather than copied (``set_hydra_config``), ``clone`` makes
the task's copy directly, and ``run_job`` is otherwise Hydra's: the same output dir,
``.hydra/`` files (the same YAML, emitted by libyaml: ``save_yaml``), log file, environment
and callbacks.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections import defaultdict
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import yaml
from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    _flush_loggers,
    configure_log,
    env_override,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write
from omegaconf._utils import OmegaConfDumper
from omegaconf.base import Metadata, Node
from omegaconf.nodes import (
    AnyNode,
    BooleanNode,
    BytesNode,
    EnumNode,
    FloatNode,
    IntegerNode,
    PathNode,
    StringNode,
)

N = TypeVar("N", bound=Node)

# Value nodes whose ``__deepcopy__`` is a new node with the metadata deep-copied and the value
# shared (``ValueNode._deepcopy_impl``); other kinds of node copy themselves.
_VALUE_NODES = frozenset(
    (AnyNode, BooleanNode, BytesNode, EnumNode, FloatNode, IntegerNode, PathNode, StringNode)
)


def clone(node: N) -> N:
    """``copy.deepcopy(node)`` for an OmegaConf config: equal, independent, same flags and
    types, the parent kept (not copied), as OmegaConf's own ``__deepcopy__`` makes it."""
    return _clone(node, node._get_parent())


def _clone(node: Any, parent: Any) -> Any:
    cls = type(node)
    if cls is not DictConfig and cls is not ListConfig and cls not in _VALUE_NODES:
        saved = node.__dict__["_parent"]
        node.__dict__["_parent"] = None
        try:
            res = copy.deepcopy(node)
        finally:
            node.__dict__["_parent"] = saved
        res.__dict__["_parent"] = parent
        return res
    res = object.__new__(cls)
    state = res.__dict__
    state.update(node.__dict__)
    state["_metadata"] = _metadata(state["_metadata"])
    state["_parent"] = parent
    if cls in _VALUE_NODES:
        state["_flags_cache"] = None
        return res
    flags = state["_flags_cache"]
    state["_flags_cache"] = None if flags is None else dict(flags)
    content = state["_content"]
    if isinstance(content, dict):
        state["_content"] = {key: _clone(value, res) for key, value in content.items()}
    elif isinstance(content, list):
        state["_content"] = [_clone(value, res) for value in content]
    return res


def _metadata(metadata: Metadata) -> Metadata:
    res = object.__new__(type(metadata))
    res.__dict__.update(metadata.__dict__)
    res.flags = None if metadata.flags is None else dict(metadata.flags)
    cache = metadata.resolver_cache
    res.resolver_cache = copy.deepcopy(cache) if cache else defaultdict(dict)
    return res


def task_config(config: DictConfig) -> DictConfig:
    """The job's config less its ``hydra`` node, as the task function gets it."""
    hydra = config.__dict__["_content"].pop("hydra")
    try:
        task = clone(config)
    finally:
        config.__dict__["_content"]["hydra"] = hydra
    return task


def plain(node: Any) -> Any:
    """``OmegaConf.to_container(node, resolve=False, enum_to_str=True)``, read straight off
    the nodes (~4x faster): the same dicts, lists and values, a missing value as ``"???"`` and
    an interpolation as its text."""
    cls = type(node)
    if cls is DictConfig or cls is ListConfig:
        content = node.__dict__["_content"]
        if content is None or isinstance(content, str):  # None, "???" or an interpolation
            return content
        if isinstance(content, dict):
            return {
                (f"{key.name}" if isinstance(key, Enum) else key): plain(value)
                for key, value in content.items()
            }
        return [plain(value) for value in content]
    if cls in _VALUE_NODES:
        value = node.__dict__["_val"]
        return f"{value.name}" if isinstance(value, Enum) else value
    return OmegaConf.to_container(node, resolve=False, enum_to_str=True)


class _Dumper(getattr(yaml, "CDumper", yaml.Dumper)):  # type: ignore[misc]
    """OmegaConf's YAML dumper (its quoting of strings that read as numbers or booleans) on
    libyaml's emitter, where PyYAML was built with it."""


_Dumper.add_representer(str, OmegaConfDumper.str_representer)


def save_yaml(node: DictConfig | ListConfig, filename: str, output_dir: Path) -> None:
    """Hydra's ``_save_config``: ``OmegaConf.to_yaml(node)`` into ``output_dir/filename``.

    The same YAML, emitted by libyaml: ~5x faster (the three files were a third of a
    job's set-up). Only the layout of a long quoted string may differ (libyaml folds its
    lines elsewhere, and escapes characters outside the BMP); the file loads the same.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    content = plain(node)
    text = yaml.dump(
        content, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=_Dumper
    )
    with open(output_dir / filename, "w", encoding="utf-8") as file:
        file.write(text)


@contextlib.contextmanager
def task_view(config: DictConfig) -> Iterator[DictConfig]:
    """The job's config less its ``hydra`` node, for reading only: ``task_config`` without
    the copy (the node is put back on leaving)."""
    content = config.__dict__["_content"]
    hydra = content.pop("hydra")
    try:
        yield config
    finally:
        content["hydra"] = hydra


def set_hydra_config(config: DictConfig) -> DictConfig:
    """``HydraConfig.instance().set_config(config)``, sharing the job's read-only ``hydra``
    node rather than copying it; returns what ``HydraConfig`` now holds.

    Hydra's copy has the job's config as its parent, as this node does; the node is read-only
    from here on, and the job's config is the job's own, so the copy would only ever differ
    by the one value ``run_job`` sets (``hydra.runtime.output_dir``), which Hydra sets in it
    too by copying it again.
    """
    OmegaConf.set_readonly(config.hydra, True)
    masked = DictConfig(content={}, flags={"no_deepcopy_set_nodes": True})
    hydra = config._get_node("hydra")
    assert isinstance(hydra, DictConfig)
    masked["hydra"] = hydra
    masked._set_flag("no_deepcopy_set_nodes", None)
    hydra._set_parent(config)
    HydraConfig.instance().cfg = masked  # type: ignore[assignment]
    return masked


def run_job(
    hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
) -> JobReturn:
    """``hydra.core.utils.run_job`` for a job of a sweep (``hydra.sweep.dir`` /
    ``hydra.sweep.subdir``), with the config copies made by ``clone``."""
    callbacks = hydra_context.callbacks
    old_cwd = os.getcwd()
    orig_hydra_cfg = HydraConfig.instance().cfg
    hydra_cfg = set_hydra_config(config)
    output_dir = os.path.join(
        str(OmegaConf.select(config, "hydra.sweep.dir")),
        str(OmegaConf.select(config, "hydra.sweep.subdir")),
    )
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    _chdir = None
    try:
        ret = JobReturn()
        task_cfg = task_config(config)
        ret.cfg = task_cfg
        ret.hydra_cfg = hydra_cfg  # read-only, and no job's but this one's
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        _chdir = hydra_cfg.hydra.job.chdir
        if _chdir is None and version.base_at_least("1.2"):
            _chdir = False
        if _chdir is None:  # version_base older than 1.2: Hydra warns and changes dir
            _chdir = True
        if _chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()
        configure_log(config.hydra.job_logging, config.hydra.verbose)
        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / Path(config.hydra.output_subdir)
            save_yaml(task_cfg, "config.yaml", hydra_output)
            save_yaml(hydra_cfg, "hydra.yaml", hydra_output)
            save_yaml(config.hydra.overrides.task, "overrides.yaml", hydra_output)
        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as e:
                ret.return_value = e
                ret.status = JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        _flush_loggers()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        HydraConfig.instance().cfg = orig_hydra_cfg
        if _chdir:
            os.chdir(old_cwd)
