"""Question sets: inline items or a JSONL/CSV file, turned into conversations to ask.

A JSONL line is one item: ``{"id": .., "question": .., "expected": ..}`` for a single
question, or ``{"id": .., "turns": [{"question": .., "expected": ..}, ..]}`` for a
conversation. A CSV file has the columns ``id,question,expected`` (and optional ``scorer``).
Files are UTF-8, with or without a byte-order mark. Every error names the file and the line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.base.errors import QuestionsError
from runner.base.schema import QuestionItem, QuestionSet
from runner.core.files import config_trees, find_file

_ITEM_KEYS = {"id", "question", "expected", "scorer", "turns"}
_TURN_KEYS = {"question", "expected", "scorer"}


@dataclass(frozen=True)
class Turn:
    """One question to ask, with what a correct answer looks like (if known)."""

    question: str
    expected: str | None = None
    scorer: str | None = None


@dataclass(frozen=True)
class Conversation:
    """Turns asked in order, each one seeing the answers before it.

    An item without an ``id`` gets one derived from its content (``q-`` and a short hash), so
    it stays the same when other items are added, removed or reordered.
    """

    id: str
    turns: tuple[Turn, ...]
    derived_id: bool = False


def load_conversations(
    qset: QuestionSet, trees: Sequence[Path] | None = None
) -> list[Conversation]:
    """The conversations of a question set: its inline items, then its file's (found as
    ``resolve_path`` finds it), ids unique."""
    conversations = [
        _from_mapping(_item_mapping(item), f"questions.items[{i}]")
        for i, item in enumerate(qset.items)
    ]
    if qset.path:
        conversations += _load_file(resolve_path(qset.path, trees))
    if not conversations:
        raise QuestionsError(
            f"question set {qset.name!r} has no questions: add items or set questions.path"
        )
    seen: set[str] = set()
    for i, conv in enumerate(conversations):
        if conv.id in seen and conv.derived_id:  # the same item twice: number the copies
            copy = 2
            while f"{conv.id}-{copy}" in seen:
                copy += 1
            conv = conversations[i] = Conversation(f"{conv.id}-{copy}", conv.turns, True)
        if conv.id in seen:
            raise QuestionsError(
                f"question set {qset.name!r} has the id {conv.id!r} twice: ids must be unique"
            )
        seen.add(conv.id)
    return conversations


def resolve_path(path: str, trees: Sequence[Path] | None = None) -> Path:
    """A questions file: absolute, or relative to the working directory, then to each config
    tree in search-path order (``trees``: the user's first, the packaged tree last; by default
    those of a run started here, see ``runner.core.files.config_trees``)."""
    found, tried = find_file(path, config_trees() if trees is None else trees)
    if found is None:
        raise QuestionsError(
            f"questions file {path} not found (looked in {', '.join(str(p) for p in tried)}): "
            "fix questions.path"
        )
    return found


def _item_mapping(item: QuestionItem) -> dict[str, Any]:
    data: dict[str, Any] = {k: getattr(item, k) for k in ("id", "question", "expected", "scorer")}
    data["turns"] = [
        {"question": t.question, "expected": t.expected, "scorer": t.scorer} for t in item.turns
    ]
    return {k: v for k, v in data.items() if v not in (None, [])}


def _load_file(path: Path) -> list[Conversation]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _load_jsonl(path)
    if suffix == ".csv":
        return _load_csv(path)
    raise QuestionsError(f"questions file {path}: unsupported type {suffix!r}: use .jsonl or .csv")


def _read_text(path: Path) -> str:
    """The file's text; a byte-order mark (Excel and Notepad write one) is dropped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise QuestionsError(
            f"questions file {path} cannot be read ({exc.strerror}): fix questions.path"
        ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise QuestionsError(
            f"{path}, line {line}: not UTF-8 (byte {raw[exc.start]:#04x}): save the file as UTF-8"
        ) from None


def _load_jsonl(path: Path) -> list[Conversation]:
    conversations: list[Conversation] = []
    for number, line in enumerate(io.StringIO(_read_text(path)), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise QuestionsError(f"{where}: not valid JSON ({exc.args[0]})") from None
        conversations.append(_from_mapping(data, where))
    return conversations


def _load_csv(path: Path) -> list[Conversation]:
    conversations: list[Conversation] = []
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    if reader.fieldnames is None or "question" not in reader.fieldnames:
        raise QuestionsError(f"{path}, line 1: the header needs a 'question' column")
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if None in row:
            raise QuestionsError(f"{where}: more fields than the header has")
        data = {k: v for k, v in row.items() if v not in (None, "")}
        conversations.append(_from_mapping(data, where))
    return conversations


def _from_mapping(data: Any, where: str) -> Conversation:
    if not isinstance(data, dict):
        raise QuestionsError(f"{where}: expected an object with 'question' or 'turns'")
    unknown = sorted(set(data) - _ITEM_KEYS)
    if unknown:
        raise QuestionsError(
            f"{where}: unknown field {unknown[0]!r}: use id, question, expected, scorer or turns"
        )
    has_question, has_turns = "question" in data, "turns" in data
    if has_question == has_turns:
        raise QuestionsError(f"{where}: give either 'question' or 'turns', not both or neither")
    if has_question:
        turns = [_turn({k: data[k] for k in _TURN_KEYS if k in data}, where)]
    else:
        raw_turns = data["turns"]
        if not isinstance(raw_turns, list) or not raw_turns:
            raise QuestionsError(f"{where}: 'turns' must be a non-empty list")
        turns = [_turn(t, f"{where}, turn {n}") for n, t in enumerate(raw_turns, start=1)]
    if "id" in data:
        return Conversation(str(data["id"]), tuple(turns))
    return Conversation(_content_id(turns), tuple(turns), derived_id=True)


def _content_id(turns: list[Turn]) -> str:
    blob = json.dumps([[t.question, t.expected, t.scorer] for t in turns], ensure_ascii=False)
    return "q-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:8]


def _turn(data: Any, where: str) -> Turn:
    if not isinstance(data, dict) or not isinstance(data.get("question"), str):
        raise QuestionsError(f"{where}: a turn needs a 'question' string")
    unknown = sorted(set(data) - _TURN_KEYS)
    if unknown:
        raise QuestionsError(f"{where}: unknown field {unknown[0]!r} in a turn")
    if not data["question"].strip():
        raise QuestionsError(f"{where}: the question is empty")
    expected = data.get("expected")
    scorer = data.get("scorer")
    return Turn(
        data["question"],
        None if expected is None else str(expected),
        None if scorer is None else str(scorer),
    )
