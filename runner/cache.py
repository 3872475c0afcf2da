"""The on-disk response cache: identical requests are answered once, across runs and processes.

Keys hash everything that shapes an answer (base URL, model, messages, sampling params);
values are successful completions only. diskcache keeps them in SQLite, which is safe
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

from runner.errors import ConfigError


def cache_key(
    base_url: str | None, model: str, messages: list[dict[str, str]], params: dict[str, Any]
) -> str:
    """A stable hash of one request."""
    blob = json.dumps(
        {"base_url": base_url, "model": model, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
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
