"""Turning Hydra's and OmegaConf's multi-line reports into one line with the cause and the fix."""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence

import yaml
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from runner.base.errors import RunnerError
from runner.core.validation import unknown_key_message

_CONVERSION = re.compile(
    r"Value '(?P<value>.*)' of type '\w+' could not be converted to (?P<to>\w+)"
)


def describe(exc: BaseException) -> str:
    """One line saying what is wrong and how to fix it."""
    if isinstance(exc, RunnerError):
        return str(exc)
    if isinstance(exc, yaml.YAMLError):
        return _bad_yaml(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return _unwritable(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        return _missing_preset(exc.missing_cfg_file, exc.options)
    if isinstance(exc, OverrideParseException):
        return (
            f"cannot parse the override {exc.override!r} ({_first_line(exc.message)}): "
            "quote values that hold spaces or brackets, e.g. 'key=\"a b\"'"
        )
    cause = exc if isinstance(exc, OmegaConfBaseException) else _omegaconf_cause(exc)
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and "not in" in str(cause):
        return _unknown_key(cause)
    if cause is not None and getattr(cause, "full_key", None):
        match = _CONVERSION.search(str(cause))
        key = cause.full_key  # type: ignore[attr-defined]
        if match:
            kind = {"Float": "number", "Integer": "whole number", "Boolean": "true or false"}.get(
                match["to"], match["to"].lower()
            )
            return f"{key}={match['value']} is not a {kind}: give {key} a {kind} value"
        return f"{key}: {_first_line(str(cause))}: fix the value in conf/ or on the command line"
    return " ".join(line.strip() for line in str(exc).splitlines()[:2] if line.strip())


def _missing_preset(missing: str, options: Sequence[str] | None) -> str:
    group, _, name = missing.rpartition("/")
    if options:
        return (
            f"unknown {group} preset {name!r}: choose one of {', '.join(options)} "
            f"(files in {group}/ of ./conf or the packaged config tree)"
        )
    return f"config {missing!r} not found: add {missing}.yaml to ./conf or fix the name"


def _bad_yaml(exc: yaml.YAMLError) -> str:
    """Where a YAML file fails to parse, as PyYAML reports it, and what to fix."""
    start = getattr(exc, "context_mark", None)
    mark = getattr(exc, "problem_mark", None) or start
    problem = getattr(exc, "problem", None) or _first_line(str(exc))
    if mark is not None:
        where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}"
    else:  # a character YAML does not allow, e.g. a control character
        where = str(getattr(exc, "name", None) or "a YAML file")
    if start is not None and mark is not None and start.line != mark.line:
        # an unclosed bracket or quote is noticed lines later: say where it opened too
        context = getattr(exc, "context", None) or "opened"
        problem += f", {context} at line {start.line + 1}, column {start.column + 1}"
    return (
        f"{where}: not valid YAML ({problem}): fix the YAML there "
        "(indentation, a missing ':' or an unclosed quote or bracket)"
    )


def _unwritable(exc: OSError) -> str:
    """A path the run cannot create or write: most often its output dir."""
    why = {
        errno.EEXIST: "it exists and is not a directory",
        errno.ENOTDIR: "a part of it is a file, not a directory",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return (
        f"cannot write {exc.filename} ({why}): choose another hydra.run.dir "
        "(hydra.sweep.dir with -m), or a directory you can write to"
    )


def _unknown_key(cause: OmegaConfBaseException) -> str:
    key = getattr(cause, "full_key", None) or getattr(cause, "key", "?")
    return unknown_key_message(str(key), getattr(cause, "object_type", None))


def _omegaconf_cause(exc: BaseException) -> OmegaConfBaseException | None:
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, OmegaConfBaseException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
