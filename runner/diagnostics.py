"""Turning Hydra's and OmegaConf's multi-line reports into one line with the cause and the fix."""

from __future__ import annotations


def describe(exc: BaseException) -> str:
    return str(exc)
