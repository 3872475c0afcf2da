"""Turning Hydra's and OmegaConf's multi-line reports into one line with the cause and the fix."""

from __future__ import annotations

import re

from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from runner.config import unknown_key_message
from runner.errors import RunnerError

_CONVERSION = re.compile(
    r"Value '(?P<value>.*)' of type '\w+' could not be converted to (?P<to>\w+)"
)


def describe(exc: BaseException) -> str:
    """One line saying what is wrong and how to fix it."""
    if isinstance(exc, RunnerError):
        return str(exc)
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


def _missing_preset(missing: str, options: list[str] | None) -> str:
    group, _, name = missing.rpartition("/")
    if options:
        return (
            f"unknown {group} preset {name!r}: choose one of {', '.join(options)} "
            f"(files in conf/{group}/)"
        )
    return f"config {missing!r} not found: add conf/{missing}.yaml or fix the name"


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
