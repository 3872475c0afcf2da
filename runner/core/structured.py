"""Structured output: the run's JSON schema, the body field that asks for it, and checking an
answer against it.

``load_schema`` reads the schema once per job (inline, or from ``response_format.schema_path``)
and checks that it is a JSON schema; ``format_spec`` gives what goes on the wire for either
API; ``conforms`` is what the ``json`` scorer uses. ``jsonschema`` is imported where it is
used, so a run without structured output does not load it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.base.errors import ConfigError
from runner.base.schema import APIS, ResponseFormat
from runner.core.files import config_trees, require_file

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def load_schema(fmt: ResponseFormat, trees: Sequence[Path] | None = None) -> dict[str, Any] | None:
    """The run's JSON schema: ``fmt.schema``, or the JSON file ``fmt.schema_path`` names
    (found as ``resolve_schema_path`` finds it); None when it gives neither.

    Raises ``ConfigError`` naming the key or the file (and line) and the fix.
    """
    if fmt.type == "json_schema" and not _NAME.fullmatch(fmt.name or ""):
        raise ConfigError(
            f"response_format.name={fmt.name!r} is not a schema name: use 1 to 64 letters, "
            "digits, '_' or '-'"
        )
    if fmt.schema is not None:
        schema, where = copy.deepcopy(dict(fmt.schema)), "response_format.schema"
    elif fmt.schema_path is not None:
        path = resolve_schema_path(fmt.schema_path, trees)
        schema, where = _read_schema(path), str(path)
    else:
        return None
    _check_schema(schema, where)
    return schema


def resolve_schema_path(path: str, trees: Sequence[Path] | None = None) -> Path:
    """A schema file: absolute, or relative to the working directory, then to each config tree
    (``trees``, by default those of a run started here), as question files are."""
    return require_file(
        path, config_trees() if trees is None else trees, "response_format.schema_path"
    )


def format_spec(
    fmt: ResponseFormat, schema: dict[str, Any] | None, api: str
) -> dict[str, Any] | None:
    """What asks for ``fmt`` on the wire; None for plain text (nothing is sent).

    Chat Completions: the ``response_format`` body field. Responses: the ``text`` body field
    (``{"format": ...}``), into which the caller merges ``verbosity`` if it sends one.
    """
    if api not in APIS:
        raise ValueError(f"unknown API {api!r}: use one of {', '.join(APIS)}")
    if fmt.type == "text":
        return None
    if fmt.type == "json_object":
        spec: dict[str, Any] = {"type": "json_object"}
    elif fmt.type == "json_schema":
        if schema is None:
            raise ValueError("a json_schema format needs its schema: call load_schema first")
        body = {"name": fmt.name, "schema": copy.deepcopy(schema), "strict": fmt.strict}
        if api == "chat":
            return {"type": "json_schema", "json_schema": body}
        spec = {"type": "json_schema", **body}
    else:
        raise ValueError(f"unknown response format {fmt.type!r}")
    return spec if api == "chat" else {"format": spec}


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """Whether a JSON value is valid under ``schema`` (by the draft its ``$schema`` names;
    2020-12 when it names none)."""
    cls = _validator_class(schema)
    if cls is None:
        raise ValueError(f"$schema={schema['$schema']!r} names no known JSON schema draft")
    return bool(cls(schema).is_valid(value))


def _validator_class(schema: Any) -> Any:
    """The validator of the draft ``$schema`` names (2020-12 when none); None for a
    ``$schema`` that names no draft jsonschema knows."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    if isinstance(schema, dict) and "$schema" in schema:
        return validator_for(schema, default=None)  # type: ignore[arg-type]
    return Draft202012Validator


def _check_schema(schema: Any, where: str) -> None:
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise ConfigError(
            f"{where}: a JSON schema is an object, not {type(schema).__name__}: write it as "
            '{"type": "object", "properties": {...}}'
        )
    cls = _validator_class(schema)
    if cls is None:
        raise ConfigError(
            f"{where}: $schema={schema['$schema']!r} names no known JSON schema draft: use "
            "https://json-schema.org/draft/2020-12/schema or leave $schema out"
        )
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.path) or "the top level"
        first = exc.message.splitlines()[0] if exc.message else "invalid"
        raise ConfigError(f"{where}: not a valid JSON schema at {at} ({first}): fix it") from None


def _read_schema(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError(
            f"{path} cannot be read ({exc.strerror}): fix response_format.schema_path"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8: save the schema file as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}): fix the "
            "schema file"
        ) from None
