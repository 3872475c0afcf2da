"""The one path every API call takes: cache, rate limits, a concurrency slot, retries.

A ``Gateway`` is shared by every job that runs in one event loop (a run, or a whole sweep
under the runner launcher), so the concurrency limit, each endpoint's rate limits and the
HTTP connection pools are shared too.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from openai import AsyncOpenAI
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from runner.cache import ResponseCache, cache_key
from runner.config import ModelPreset, RetryPolicy
from runner.echo import ECHO_BASE_URL, echo_transport
from runner.engine import Completion, stream_completion
from runner.errors import CredentialsError
from runner.limits import RateLimits
from runner.record import CallError
from runner.retry import backoff_s, classify


@dataclass
class CallOutcome:
    """A completion or the error that ended the last attempt, with how it was got."""

    completion: Completion | None
    error: CallError | None
    attempts: int
    cache_hit: bool
    latency_s: float | None


def api_key_for(preset: ModelPreset) -> str:
    """The preset's API key from the environment; ``CredentialsError`` names a missing variable."""
    if preset.engine == "echo":
        return "offline"
    if not preset.api_key_env:
        return "not-needed"  # local servers (Ollama, vLLM) ignore the key but the SDK wants one
    key = os.environ.get(preset.api_key_env, "")
    if not key:
        raise CredentialsError(
            f"model {preset.name} needs an API key: set the environment variable "
            f"{preset.api_key_env} (or run offline with model=echo)"
        )
    return key


class Gateway:
    """Shared call machinery for one event loop."""

    def __init__(self, concurrency: int, cache: ResponseCache | None = None) -> None:
        self.concurrency = concurrency
        self.cache = cache
        self._slots = asyncio.Semaphore(concurrency)
        self._sending = asyncio.Event()
        self._sending.set()
        self._clients: dict[tuple[str, str | None, str | None], AsyncOpenAI] = {}
        self._limits: dict[tuple[str | None, str], RateLimits] = {}
        self._secrets: set[str] = set()

    def hold(self) -> None:
        """Keep requests from going out until ``release`` (cache hits are still answered)."""
        self._sending.clear()

    def release(self) -> None:
        self._sending.set()

    def client_for(self, preset: ModelPreset) -> AsyncOpenAI:
        key = (preset.engine, preset.base_url, preset.api_key_env)
        client = self._clients.get(key)
        if client is None:
            api_key = api_key_for(preset)
            if preset.engine == "echo":
                http = httpx2.AsyncClient(transport=echo_transport())
                client = AsyncOpenAI(
                    api_key=api_key, base_url=ECHO_BASE_URL, max_retries=0, http_client=http
                )
            else:
                self._secrets.add(api_key)
                client = AsyncOpenAI(api_key=api_key, base_url=preset.base_url, max_retries=0)
            self._clients[key] = client
        return client

    def limits_for(self, preset: ModelPreset) -> RateLimits:
        key = (preset.base_url, preset.name)
        limits = self._limits.get(key)
        if limits is None:
            limits = self._limits[key] = RateLimits(preset.rpm, preset.tpm)
        return limits

    async def complete(
        self,
        preset: ModelPreset,
        messages: list[dict[str, str]],
        params: dict[str, Any],
        estimated_tokens: int,
        retry: RetryPolicy,
        timeout_s: float,
        on_delta: Callable[[str | None], None] | None = None,
    ) -> CallOutcome:
        """Answer from the cache, or call the API with retries; never raises for API failures.

        ``on_delta`` receives each streamed piece of the answer, and ``None`` when an attempt
        starts over (a retry), so a live display can clear what it showed.
        """
        key = None
        if self.cache is not None:
            key = cache_key(preset.base_url, preset.name, messages, params)
            hit = self.cache.get(key)
            if hit is not None:
                completion = Completion.from_cache(hit)
                if on_delta is not None and completion.answer:
                    on_delta(completion.answer)
                return CallOutcome(completion, None, 0, True, 0.0)
        client = self.client_for(preset)
        limits = self.limits_for(preset)
        await self._sending.wait()

        def wait(state: RetryCallState) -> float:
            failure = classify(state.outcome.exception())  # type: ignore[union-attr, arg-type]
            if failure.retry_after_s is not None:
                limits.pause(failure.retry_after_s)
            return backoff_s(
                state.attempt_number,
                retry.initial_backoff_s,
                retry.max_backoff_s,
                failure.retry_after_s,
            )

        free_retries = 0

        def stop(state: RetryCallState) -> bool:
            # A 429 that says when to come back is the server pacing us, not a failure: it
            # does not use up an attempt, but the call gives up after retry.max_wait_s.
            nonlocal free_retries
            failure = classify(state.outcome.exception())  # type: ignore[union-attr, arg-type]
            if failure.error.status == 429 and failure.retry_after_s is not None:
                free_retries += 1
            if (state.seconds_since_start or 0.0) >= retry.max_wait_s:
                return True
            return state.attempt_number - free_retries >= retry.max_attempts

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda exc: classify(exc).retryable),
            reraise=True,
        )
        started = time.perf_counter()
        try:
            async for attempt in retrying:
                with attempt:
                    await limits.acquire(estimated_tokens)
                    async with self._slots:
                        started = time.perf_counter()
                        if on_delta is not None and attempt.retry_state.attempt_number > 1:
                            on_delta(None)
                        completion = await stream_completion(
                            client, preset.name, messages, params, timeout_s, on_delta
                        )
        except Exception as exc:  # every API failure becomes an error record
            error = classify(exc).error
            error.message = self._scrub(error.message)
            return CallOutcome(
                None,
                error,
                retrying.statistics.get("attempt_number", 1),
                False,
                time.perf_counter() - started,
            )
        if key is not None and self.cache is not None:
            self.cache.put(key, completion.to_cache())
        return CallOutcome(
            completion,
            None,
            retrying.statistics["attempt_number"],
            False,
            time.perf_counter() - started,
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret and len(secret) >= 8:
                text = text.replace(secret, "***")
        return text

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
