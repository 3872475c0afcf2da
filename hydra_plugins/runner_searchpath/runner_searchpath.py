"""Hydra search-path plugin: ``./conf`` in the working directory, ahead of the packaged tree.

A user's own presets (``./conf/system/pirate.yaml`` is ``system=pirate``) sit next to the
packaged ones, and a ``./conf/config.yaml`` replaces the packaged primary config. Hydra
loads every plugin under ``hydra_plugins`` for every app, so this one acts only when the
primary config source is the runner's packaged tree: not for other apps, and not when
``--config-path`` names another tree.

Kept free of ``runner`` imports: Hydra imports it for every app in the environment.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PROVIDER = "runner-user-conf"
USER_CONF = "conf"  # runner.core.files.USER_CONF


class RunnerSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        main = next((e for e in search_path.get_path() if e.provider == "main"), None)
        packaged = _packaged_tree()
        if main is None or packaged is None or _file_path(main.path) != packaged:
            return
        user = Path.cwd() / USER_CONF
        if user.is_dir() and user.resolve() != packaged:
            search_path.prepend(
                provider=PROVIDER,
                path=f"file://{user.resolve()}",
                anchor=SearchPathQuery(provider="main"),
            )


def _file_path(path: str) -> Path | None:
    """The directory a ``file://`` (or plain) search-path entry names; None for ``pkg://``."""
    if path.startswith("file://"):
        path = path[len("file://") :]
    elif "://" in path:
        return None
    return Path(path).resolve()


def _packaged_tree() -> Path | None:
    """``runner/conf`` of the installed package, found without importing it."""
    spec = importlib.util.find_spec("runner")
    if spec is None or not spec.submodule_search_locations:
        return None
    return (Path(next(iter(spec.submodule_search_locations))) / "conf").resolve()
