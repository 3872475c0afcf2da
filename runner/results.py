"""Loading transcripts into one pandas DataFrame: a row per record, a column per swept key.

pandas is imported inside ``load_results`` so that importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from runner.errors import ResultsError
from runner.judgments import add_judge_columns
from runner.record import CallError, TokenUsage, TranscriptRecord
from runner.transcript import TRANSCRIPT_NAME, read_records

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_results"]

# Nested groups of a record, flattened one level into "<group>.<key>" columns. The known
# keys always get a column (so ``df["error.type"].isna()`` works on any frame); the open
# groups get a column per key seen in any record.
_GROUPS: dict[str, tuple[str, ...]] = {
    "params": (),
    "usage": tuple(f.name for f in dataclasses.fields(TokenUsage)),
    "error": tuple(f.name for f in dataclasses.fields(CallError)),
    "extra": (),
}
_FIELDS = tuple(f.name for f in dataclasses.fields(TranscriptRecord))
_SWEEP_PREFIX = "sweep."
# YAML 1.1 reads these as booleans, Hydra's override grammar as strings: keep the string.
_YAML11_BOOL = re.compile(r"(?i)y|n|yes|no|on|off")
# Floats Hydra accepts that YAML 1.1 reads as strings: 1e-3 (no dot), inf, nan.
_HYDRA_FLOAT = re.compile(r"(?i)[+-]?(?:(?:\d+\.?\d*|\.\d+)e[+-]?\d+|inf|nan)")


def load_results(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> pd.DataFrame:
    """Read the transcripts of runs and sweeps into one DataFrame, one row per record.

    Each path may be a run dir (it holds ``transcript.jsonl``), a sweep dir (job subdirs
    ``0/``, ``1/``, ... next to Hydra's ``multirun.yaml``), any directory holding
    transcripts at any depth, a transcript file itself, or a list of any of these.
    Transcripts found under a directory are read in natural order (job 2 before job 10),
    records in file order; a transcript reached twice is read once. A torn last line (a
    killed run) is skipped with a logged warning.

    Columns, in order:

    - every ``TranscriptRecord`` field, with the nested groups flattened one level with
      dots: ``params.temperature``, ``usage.prompt_tokens``, ``usage.source``,
      ``error.type``, ``error.message``, ``error.status`` (``usage.*`` and ``error.*``
      always exist; ``error.type`` is empty where the call succeeded). ``messages`` and
      ``overrides`` stay Python lists. ``created_at`` is a UTC datetime.
    - ``job_dir``: the directory the record's transcript was in.
    - ``judge.model``, ``judge.score``, ``judge.grade``, ``judge.passed``, ``judge.reasoning``,
      ``judge.cost_usd``, ``judge.error`` (its type): the judge's latest verdict on the record
      from ``judgments.jsonl`` beside the transcript (None where it has none); ``score`` takes
      ``judge.score`` where the record has no score of its own.
    - one column per swept key, i.e. per key set by a Hydra override (``model=echo``,
      ``+foo=1``, ``sampling.temperature=0.7``; ``~key`` deletions and ``hydra`` keys are
      not swept keys), named after the key and typed as Hydra types it (``0.7`` is a
      float, ``1`` an int, ``null`` None; anything else stays a string). A row whose job
      did not override the key holds None. When the key is already a record column
      (``model``, ``system``) and the record agrees with the override on every row that
      sets it, the record's column is the swept column; otherwise the override goes into
      ``sweep.<key>``.

    ``df.attrs["swept_keys"]`` lists the swept keys in the order first seen, and
    ``df.attrs["swept_columns"]`` maps each to its column.

    Args:
        paths: A run dir, sweep dir, directory of runs or ``transcript.jsonl`` path, or an
            iterable of them.

    Returns:
        The records as a DataFrame. When every transcript is empty it has no rows but
        still has the record's columns.

    Raises:
        ResultsError: A path does not exist, a directory holds no transcript, no path was
            given, or a transcript is corrupt (a malformed line other than the last: the
            message names the file and line).

    Example::

        df = load_results("multirun/2026-11-20/10-00-00")
        df.attrs["swept_keys"]  # ['model', 'sampling.temperature']
        df[df["error.type"].isna()].pivot_table(
            index="model",
            columns="sampling.temperature",
            values="usage.completion_tokens",
            aggfunc="mean",
        )
    """
    pd = _pandas()

    loaded: list[tuple[dict[str, Any], str]] = []
    for transcript in _find_transcripts(paths):
        job_dir = str(transcript.parent)
        loaded.extend((record, job_dir) for record in _read(transcript))

    rows, columns = _flatten([record for record, _ in loaded])
    for row, (_, job_dir) in zip(rows, loaded, strict=True):
        row["job_dir"] = job_dir
    columns.append("job_dir")
    columns += add_judge_columns(rows, [job_dir for _, job_dir in loaded])
    swept = _add_swept_columns(rows, [record.get("overrides") for record, _ in loaded], columns)

    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    frame["created_at"] = pd.to_datetime(
        frame["created_at"], utc=True, format="ISO8601", errors="coerce"
    )
    frame.attrs["swept_keys"] = list(swept)
    frame.attrs["swept_columns"] = swept
    return frame


def _pandas() -> Any:
    """pandas, which analysis needs and running does not: it comes with ``runner[notebook]``."""
    try:
        import pandas
    except ImportError:
        raise ModuleNotFoundError(
            "load_results needs pandas, which is not installed: pip install 'runner[notebook]'",
            name="pandas",
        ) from None
    return pandas


def _find_transcripts(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[Path]:
    """The transcript files behind ``paths``, each once, in the order given."""
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not given:
        raise ResultsError("no path given; pass a run dir, a sweep dir or a transcript.jsonl")
    found: dict[Path, Path] = {}
    for item in given:
        path = Path(item)
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(path.rglob(TRANSCRIPT_NAME), key=lambda f: _natural_key(f, path))
            files = [f for f in files if f.is_file()]
            if not files:
                raise ResultsError(
                    f"{path}: no {TRANSCRIPT_NAME} in this directory or below it; runs write "
                    f"{TRANSCRIPT_NAME} into their Hydra output dir (outputs/<date>/<time>/, "
                    "or multirun/<date>/<time>/<job>/ for a sweep)"
                )
        else:
            raise ResultsError(
                f"{path}: no such file or directory; pass a run dir, a sweep dir or a "
                "transcript.jsonl"
            )
        for file in files:
            found.setdefault(file.resolve(), file)
    return list(found.values())


def _natural_key(path: Path, root: Path) -> tuple[tuple[tuple[int, int | str], ...], ...]:
    """Sort key of ``path`` under ``root`` comparing digit runs as numbers: 2/ before 10/."""
    return tuple(
        tuple((0, int(c)) if c.isdecimal() else (1, c) for c in re.split(r"(\d+)", part))
        for part in path.relative_to(root).parts
    )


def _read(path: Path) -> list[dict[str, Any]]:
    """The records of one transcript; corruption becomes a ResultsError."""
    try:
        records = list(read_records(path))
    except ValueError as exc:
        raise ResultsError(f"{exc}; fix or remove that line") from exc
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ResultsError(f"{path}, record {number}: not a JSON object; fix or remove it")
    return records


def _flatten(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows with nested groups flattened one level, and every column in record order."""
    groups = {name: dict.fromkeys(keys) for name, keys in _GROUPS.items()}
    tops = dict.fromkeys(_FIELDS)
    for record in records:
        tops.update(dict.fromkeys(record))
        for key, value in record.items():
            if isinstance(value, dict):
                groups.setdefault(key, {}).update(dict.fromkeys(value))

    flat: list[dict[str, Any]] = []
    for record in records:
        row: dict[str, Any] = {}
        for key, value in record.items():
            if key in groups and isinstance(value, dict):
                row.update({f"{key}.{sub}": sub_value for sub, sub_value in value.items()})
            elif key not in groups or value is not None:
                # None in a group means "empty group", e.g. no error: its columns stay None.
                row[key] = value
        flat.append(row)

    columns: list[str] = []
    for key in tops:
        if key in groups:
            columns.extend(f"{key}.{sub}" for sub in groups[key])
        # A group holding a non-dict value somewhere (a malformed record) keeps it as is.
        if key not in groups or any(key in row for row in flat):
            columns.append(key)
    rows = [{column: row.get(column) for column in columns} for row in flat]
    return rows, columns


def _add_swept_columns(
    rows: list[dict[str, Any]], overrides: list[Any], columns: list[str]
) -> dict[str, str]:
    """Add a column per key set by an override to ``rows`` and ``columns``; key -> column."""
    parsed = [_parse_overrides(item) for item in overrides]
    keys = dict.fromkeys(key for values in parsed for key in values)
    swept: dict[str, str] = {}
    for key in keys:
        column = key
        if key in columns:
            pairs = zip(rows, parsed, strict=True)
            if all(_same(values[key], row[key]) for row, values in pairs if key in values):
                swept[key] = key
                continue
            column = _SWEEP_PREFIX + key
        for row, values in zip(rows, parsed, strict=True):
            row[column] = values.get(key)
        columns.append(column)
        swept[key] = column
    return swept


def _parse_overrides(overrides: Any) -> dict[str, Any]:
    """The keys set by a job's Hydra override strings, with their typed values."""
    if not isinstance(overrides, list):
        return {}
    values: dict[str, Any] = {}
    for text in overrides:
        if not isinstance(text, str) or text.lstrip().startswith("~"):
            continue
        key, sep, raw = text.strip().lstrip("+").partition("=")
        key = key.strip()
        if not sep or not key or key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        values[key] = _parse_value(raw.strip())
    return values


def _parse_value(raw: str) -> Any:
    """An override value typed as Hydra types it: int, float, bool, None, else the string."""
    if not raw or _YAML11_BOOL.fullmatch(raw):  # "key=" sets the empty string
        return raw
    if _HYDRA_FLOAT.fullmatch(raw):
        return float(raw)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # Lists, dicts and dates stay as written: a swept value must be a hashable label.
    return value if value is None or isinstance(value, bool | int | float | str) else raw


def _same(swept: Any, recorded: Any) -> bool:
    """Whether an override value and a record value are the same (as strings, or both empty)."""
    if _is_missing(swept) or _is_missing(recorded):
        return _is_missing(swept) and _is_missing(recorded)
    if _is_number(swept) and _is_number(recorded):
        return bool(swept == recorded)
    return str(swept) == str(recorded)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
