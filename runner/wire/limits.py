"""Client-side rate limits of one model endpoint: requests and tokens per minute, and a
shared pause when the server says to back off."""

from __future__ import annotations

import asyncio
import time

from aiolimiter import AsyncLimiter


class PauseTooLong(Exception):
    """The endpoint is paused (a server's Retry-After) past the time a call has left."""


class RateLimits:
    """Gates every attempt to one endpoint; shared by all jobs that use it."""

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        # One request at a time, spaced evenly: a limit never lets a minute's worth through in
        # one burst, and a limit under 60 a minute still means one every 60/rpm seconds.
        self._requests = AsyncLimiter(1, 60 / rpm) if rpm else None
        self._tokens = AsyncLimiter(tpm, 60) if tpm else None
        self._paused_until = 0.0

    async def acquire(self, tokens: int, deadline: float | None = None) -> None:
        """Wait until one request of about ``tokens`` tokens may be sent.

        ``deadline`` (``time.monotonic()``) is when the call gives up: a pause that would
        outlast it raises ``PauseTooLong`` at once instead of sleeping past it.
        """
        await self.wait_for_pause(deadline)
        if self._requests is not None:
            await self._requests.acquire()
        if self._tokens is not None and tokens > 0:
            await self._tokens.acquire(min(tokens, self.tpm or tokens))
        await self.wait_for_pause(deadline)

    def pause(self, seconds: float) -> None:
        """Hold every request to this endpoint for ``seconds`` (a 429's Retry-After)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def wait_for_pause(self, deadline: float | None = None) -> None:
        while (delay := self._paused_until - time.monotonic()) > 0:
            if deadline is not None and self._paused_until > deadline:
                raise PauseTooLong(
                    f"not sent: the server asked every call to this endpoint to wait {delay:.1f} s "
                    "(Retry-After), past retry.max_wait_s for this call"
                )
            await asyncio.sleep(delay)
