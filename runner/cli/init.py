"""``python -m runner init``: a starter ``conf/`` for a new project, in the working directory.

It holds a ``config.yaml`` that keeps the packaged settings, and one example preset each of
a system message, a question set read from a JSONL file, and a model on an OpenAI-compatible
server. The runner searches ``./conf`` before its packaged tree, so the examples are
selectable at once (``system=tutor``) next to the packaged presets.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from runner.base.errors import ConfigError
from runner.core.files import USER_CONF

STARTER = Path(__file__).resolve().parent.parent / "starter"
NEXT_COMMAND = "python -m runner system=tutor questions=starter"
USAGE = """usage: python -m runner init

Write a starter conf/ into the working directory: a config.yaml that keeps the packaged
settings, and example presets (system=tutor, questions=starter, model=local). The runner
reads ./conf before its packaged presets. Refuses if ./conf exists."""

# What each starter file is for, as ``init`` reports it.
_ABOUT = {
    "config.yaml": "your settings: the packaged ones, then what you change here",
    "model/local.yaml": "a model on an OpenAI-compatible server (model=local)",
    "questions/data/starter.jsonl": "the questions it asks, one JSON object a line",
    "questions/starter.yaml": "a question set read from a JSONL file (questions=starter)",
    "system/tutor.yaml": "a system message (system=tutor)",
}


def write_starter(directory: Path) -> list[Path]:
    """Write the starter tree into ``directory/conf``; returns the files written, sorted.

    Raises ``ConfigError`` if ``directory/conf`` exists (nothing is overwritten).
    """
    target = directory / USER_CONF
    if target.exists() or target.is_symlink():
        raise ConfigError(
            f"{target} already exists: edit the presets there, or run `python -m runner init` "
            "in a new directory"
        )
    shutil.copytree(STARTER, target, ignore=shutil.ignore_patterns("__pycache__"))
    return sorted(p for p in target.rglob("*") if p.is_file())


def main(args: Sequence[str]) -> int:
    """``python -m runner init``: write the starter tree and say what to run next."""
    if list(args) in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if args:
        print(
            f"runner: error: init takes no arguments (got {' '.join(args)}): run it in the "
            "directory that should hold conf/",
            file=sys.stderr,
        )
        return 2
    cwd = Path.cwd()
    try:
        written = write_starter(cwd)
    except (ConfigError, OSError) as exc:
        message = str(exc) if isinstance(exc, ConfigError) else _unwritable(exc, cwd)
        print(f"runner: error: {message}", file=sys.stderr)
        return 2
    names = [p.relative_to(cwd).as_posix() for p in written]
    width = max(len(n) for n in names)
    print(f"wrote {cwd / USER_CONF}:")
    for path, name in zip(written, names, strict=True):
        about = _ABOUT.get(path.relative_to(cwd / USER_CONF).as_posix(), "")
        print(f"  {name:<{width}}  {about}".rstrip())
    print(
        "The runner reads conf/ in the directory it runs from before its packaged presets; "
        "`python -m runner --help` lists them all."
    )
    print(f"next: {NEXT_COMMAND}")
    return 0


def _unwritable(exc: OSError, cwd: Path) -> str:
    reason = exc.strerror or type(exc).__name__
    return f"cannot write {cwd / USER_CONF} ({reason}): run init in a directory you can write to"
