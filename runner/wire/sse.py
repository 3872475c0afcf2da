"""The openai SDK's stream, told apart by whether the server ended it with ``[DONE]``.

Apart from ``runner.wire.completion`` so that the SDK (~0.45 s to import, most of it
``openai.types``, which its package imports eagerly) loads with the first call, not with the runner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from openai import AsyncStream


class DoneStream(AsyncStream[object]):
    """The SDK's stream of server-sent events as JSON objects, noting whether the server said
    ``[DONE]`` (Chat Completions end with it; a Responses stream ends with its last event)."""

    done = False

    async def _iter_events(self) -> AsyncIterator[Any]:
        async for sse in super()._iter_events():
            if sse.data.startswith("[DONE]"):
                self.done = True
            yield sse
