"""The on-disk response cache: identical requests are answered once, across runs and processes.

Keys hash everything that shapes an answer (the base URL calls go to, the API and the whole
request body: model, messages, sampling params, tools, response format); values are
finished completions only. diskcache keeps them in SQLite, which is safe
for several processes at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import diskcache

from runner.base.errors import ConfigError


def cache_key(base_url: str | None, request: str) -> str:
    """A stable hash of one request (``request``: its canonical JSON) sent to ``base_url``."""
    blob = json.dumps([base_url, request], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Completed responses keyed by ``cache_key``."""

    def __init__(self, directory: str | Path) -> None:
        """Open (or create) the cache in ``directory``; ``ConfigError`` names cache.dir if not."""
        self.directory = Path(directory)
        try:
            self._cache = diskcache.Cache(str(self.directory), size_limit=2**33)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cache.dir={self.directory} cannot be opened ({_reason(self.directory, exc)}): "
                "choose another cache.dir, or set cache.enabled=false"
            ) from None

    def get(self, key: str) -> dict[str, Any] | None:
        return self._cache.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._cache.set(key, value)

    def close(self) -> None:
        self._cache.close()


def _reason(directory: Path, exc: Exception) -> str:
    """Why a cache directory cannot be opened, in a few words."""
    for path in (directory, *directory.parents):
        if path.exists():
            if not path.is_dir():
                return f"{path} is a file, not a directory"
            break
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc)
