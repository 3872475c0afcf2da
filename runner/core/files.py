"""Where config trees are, and finding a file a config names (questions, a schema, a rubric).

Whoever composed the config knows its trees (the command line from Hydra's search path, a
notebook from the working directory) and hands them to planning: nothing here reads Hydra's
global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runner.base.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
"""The packaged config tree (``runner/conf``): the presets every install has."""

USER_CONF = "conf"
"""The user's own tree: ``./conf`` in the directory the runner starts in, searched before
``CONF_DIR`` (the Hydra search-path plugin in ``hydra_plugins/runner_searchpath`` adds it)."""


def user_conf_dir() -> Path | None:
    """``./conf`` in the working directory, if there is one."""
    path = Path.cwd() / USER_CONF
    return path if path.is_dir() else None


def config_trees(dirs: Sequence[Path] = ()) -> list[Path]:
    """The config trees to search, in order: ``dirs`` (the user's first; by default what a run
    started here would see: ``./conf`` if present), then always the packaged tree, whose
    question files resolve under ``--config-path`` too."""
    found = list(dirs) if dirs else [d for d in (user_conf_dir(),) if d is not None]
    return [d for d in found if Path(d).resolve() != CONF_DIR] + [CONF_DIR]


def require_file(path: str, trees: Sequence[Path], key: str) -> Path:
    """``find_file`` for the config key ``key``; ``ConfigError`` naming where it looked when
    the file is nowhere."""
    found, tried = find_file(path, trees)
    if found is None:
        raise ConfigError(
            f"{key}={path!r} not found (looked in {', '.join(str(p) for p in tried)}): fix {key}"
        )
    return found


def find_file(path: str, trees: Sequence[Path]) -> tuple[Path | None, list[Path]]:
    """A file a config names: absolute, or relative to the working directory, then to each of
    ``trees`` (``config_trees``). Returns it, or None, and the places tried (for the error the
    caller raises)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        tried = [candidate]
    else:
        tried = [Path.cwd() / candidate] + [Path(d) / candidate for d in trees]
    return next((p for p in tried if p.is_file()), None), tried
