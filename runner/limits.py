"""Client-side rate limits of one model endpoint: requests and tokens per minute, and a
shared pause when the server says to back off."""

from __future__ import annotations

import asyncio
import time

from aiolimiter import AsyncLimiter

# Requests are metered in slices of this many seconds, so a limit never lets a whole
# minute's worth through in one burst.
_SLICE_S = 1.0


class RateLimits:
    """Gates every attempt to one endpoint; shared by all jobs that use it."""

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._requests = AsyncLimiter(max(rpm * _SLICE_S / 60, 1), _SLICE_S) if rpm else None
        self._tokens = AsyncLimiter(tpm, 60) if tpm else None
        self._paused_until = 0.0

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of about ``tokens`` tokens may be sent."""
        await self.wait_for_pause()
        if self._requests is not None:
            await self._requests.acquire()
        if self._tokens is not None and tokens > 0:
            await self._tokens.acquire(min(tokens, self.tpm or tokens))
        await self.wait_for_pause()

    def pause(self, seconds: float) -> None:
        """Hold every request to this endpoint for ``seconds`` (a 429's Retry-After)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def wait_for_pause(self) -> None:
        while (delay := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)
