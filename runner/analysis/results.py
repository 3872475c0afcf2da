"""Loading transcripts into one pandas DataFrame: a row per record, a column per swept key.

Also what the summary shares with it: the split of swept keys into varying and constant
ones. pandas is imported where used, so importing this module stays cheap; nothing here
imports Hydra, OmegaConf or the openai SDK.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.analysis.judgments import merge_judgments
from runner.analysis.overrides import config_label, parse_overrides
from runner.analysis.stats import final_records, question_key
from runner.base.errors import ResultsError
from runner.base.record import CallError, TokenUsage, TranscriptRecord
from runner.base.transcript import TRANSCRIPT_NAME, find_transcripts, read_records

if TYPE_CHECKING:
    import pandas as pd


# Nested groups of a record, flattened one level into "<group>.<key>" columns. The known
# keys always get a column (so ``df["error.type"].isna()`` works on any frame); the open
# groups get a column per key seen in any record.
_GROUPS: dict[str, tuple[str, ...]] = {
    "params": (),
    "usage": tuple(f.name for f in dataclasses.fields(TokenUsage)),
    "error": tuple(f.name for f in dataclasses.fields(CallError)),
    "extra": (),
    "judge": ("model", "score", "grade", "passed", "reasoning", "cost_usd", "error"),
}
_FIELDS = tuple(f.name for f in dataclasses.fields(TranscriptRecord))
_SWEEP_PREFIX = "sweep."
# Whole numbers that may be missing: nullable integers, so that 3 stays 3 rather than 3.0.
_INT_COLUMNS = frozenset(
    {"job", "turn", "step", "sample", "choice", "dropped_messages", "attempts"}
    | {"estimated_prompt_tokens", "error.status"}
)
_INT_GROUPS = ("usage.", "retried_usage.")  # with a name ending in _tokens


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
      ``overrides`` stay Python lists. ``created_at`` is a UTC datetime. Whole numbers
      that may be missing are nullable integers (``Int64``): ``job``, ``turn``, ``step``,
      ``sample``, ``choice``, ``attempts``, ``dropped_messages``,
      ``estimated_prompt_tokens``, ``error.status`` and the token counts
      (``usage.*_tokens``, ``retried_usage.*_tokens``).
    - ``job_dir``: the directory the record's transcript was in.
    - ``judge.model``, ``judge.score``, ``judge.grade``, ``judge.passed``, ``judge.reasoning``,
      ``judge.cost_usd``, ``judge.error`` (its type): the judge's latest verdict on the record
      from ``judgments.jsonl`` beside the transcript (None where it has none); ``score`` takes
      ``judge.score`` where the record has no score of its own.
    - ``question_key``: ``<conversation_id>#<turn>``, one question across samples,
      choices and jobs (pivot on it to compare configurations question by question).
    - ``final``: whether the record holds a turn's answer (False for the intermediate
      calls of a tool loop, which asked for tools); scores and the summary count these.
    - one column per swept key, i.e. per key set by a Hydra override (``model=echo``,
      ``+foo=1``, ``sampling.temperature=0.7``; ``~key`` deletions and ``hydra`` keys are
      not swept keys), named after the key and typed as Hydra's override grammar types it
      (``0.7`` and ``1e-3`` are floats, ``1`` an int, ``true`` a bool, ``null`` None;
      anything else, ``yes`` and ``[a,b]`` included, stays a string; see
      ``parse_override``, which ``summary.csv`` shares). A row whose job did not override
      the key holds None. When the key is already a record column (``model``, ``system``)
      and the record agrees with the override on every row that sets it, the record's
      column is the swept column; otherwise the override goes into ``sweep.<key>``.
    - ``config``: a label of the row's configuration, the values that tell the loaded
      jobs apart as ``key=value`` joined by spaces in swept-key order
      (``model=gpt-4.1 sampling.temperature=0.7``); when none differ (a single job), every
      value set; ``default`` for a job that sets none of them.

    ``df.attrs["swept_keys"]`` lists the swept keys in the order first seen, and
    ``df.attrs["swept_columns"]`` maps each to its column. ``df.attrs["varying"]`` lists
    the swept keys whose value differs between rows (the ones ``config`` names), and
    ``df.attrs["constant"]`` maps each other swept key to the value every row has.

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

    loaded: list[tuple[dict[str, Any], str, bool]] = []
    for transcript in _find_transcripts(paths):
        job_dir = str(transcript.parent)
        records = merge_judgments(_read(transcript), transcript.parent)
        answers = {id(record) for record in final_records(records)}
        loaded.extend((record, job_dir, id(record) in answers) for record in records)

    rows, columns = _flatten([record for record, _, _ in loaded])
    for row, (record, job_dir, final) in zip(rows, loaded, strict=True):
        row["job_dir"] = job_dir
        row["question_key"] = question_key(record)
        row["final"] = final
    columns += ["job_dir", "question_key", "final"]
    parsed = [_parse_overrides(record.get("overrides")) for record, _, _ in loaded]
    swept = _add_swept_columns(rows, parsed, columns)
    varying, constant = split_swept(parsed)
    named = varying or list(swept)  # nothing differs (a single job): name what is set
    for row, values in zip(rows, parsed, strict=True):
        row["config"] = config_label({k: values[k] for k in named if k in values})
    columns.append("config")

    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    frame["created_at"] = pd.to_datetime(
        frame["created_at"], utc=True, format="ISO8601", errors="coerce"
    )
    for column in frame.columns:
        if column in _INT_COLUMNS or (
            column.startswith(_INT_GROUPS) and column.endswith("_tokens")
        ):
            frame[column] = _nullable_int(frame[column])
    frame["final"] = frame["final"].astype(bool)
    frame.attrs["swept_keys"] = list(swept)
    frame.attrs["swept_columns"] = swept
    frame.attrs["varying"] = varying
    frame.attrs["constant"] = constant
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
        if not path.exists():
            raise ResultsError(
                f"{path}: no such file or directory; pass a run dir, a sweep dir or a "
                "transcript.jsonl"
            )
        files = find_transcripts(path)
        if not files:
            raise ResultsError(
                f"{path}: no {TRANSCRIPT_NAME} in this directory or below it; runs write "
                f"{TRANSCRIPT_NAME} into their Hydra output dir (outputs/<date>/<time>/, "
                "or multirun/<date>/<time>/<job>/ for a sweep)"
            )
        for file in files:
            found.setdefault(file.resolve(), file)
    return list(found.values())


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
    rows: list[dict[str, Any]], parsed: list[dict[str, Any]], columns: list[str]
) -> dict[str, str]:
    """Add a column per key set by an override to ``rows`` and ``columns``; key -> column."""
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
    return parse_overrides(tuple(o for o in overrides if isinstance(o, str)))


def split_swept(jobs: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """The swept keys whose value differs between jobs (a key some job does not set
    differs), in the order first seen, and the others with the value every job gives them."""
    keys = dict.fromkeys(key for values in jobs for key in values)
    varying: list[str] = []
    constant: dict[str, Any] = {}
    for key in keys:
        seen = {repr(values[key]) if key in values else "<unset>" for values in jobs}
        if len(seen) > 1:
            varying.append(key)
        else:
            constant[key] = jobs[0][key]
    return varying, constant


def _nullable_int(column: pd.Series) -> pd.Series:
    """``column`` as nullable integers, or as it is when it holds anything else."""
    try:
        return column.astype("Int64")
    except (TypeError, ValueError):  # a malformed record: keep what it holds
        return column


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
