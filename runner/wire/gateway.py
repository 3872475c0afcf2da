"""The one path every API call takes: cache, rate limits, a concurrency slot, retries.

A ``Gateway`` is shared by every job that runs in one event loop (a run, or a whole sweep
under the runner launcher), so the concurrency limit, each endpoint's rate limits and the
HTTP connection pools are shared too. Identical requests in flight at once are sent once
(when the cache is on): the others wait for that answer and are cache hits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx2
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from runner.base.errors import CredentialsError
from runner.base.record import AttemptError, CallError
from runner.base.schema import ModelPreset, RetryPolicy
from runner.wire.cache import ResponseCache, cache_key
from runner.wire.chat_completions import stream_completion
from runner.wire.completion import Completion, Progress, timeout_for
from runner.wire.limits import RateLimits
from runner.wire.request import Request, request_key
from runner.wire.responses import stream_response
from runner.wire.retry import backoff_s, charged, classify, retrying

if TYPE_CHECKING:  # imported with the first client: a dry run or a bad config never pays for it
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)


@dataclass
class CallOutcome:
    """A completion or the error that ended the last attempt, with how it was got.

    ``attempt_errors`` lists every failed attempt (retried ones and a final one);
    ``charged`` holds what the failed attempts the server billed had received.
    """

    completion: Completion | None
    error: CallError | None
    attempts: int
    cache_hit: bool
    latency_s: float | None
    attempt_errors: list[AttemptError] = field(default_factory=list)
    charged: list[Progress] = field(default_factory=list)
    batch_id: str | None = None  # the Batch API batch that answered it (batch=true)


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
        self._limits: dict[tuple[str, str], RateLimits] = {}
        self._secrets: set[str] = set()
        self._in_flight: dict[str, asyncio.Future[Completion | None]] = {}
        # SQLite work off the event loop, on one thread (diskcache connections are per thread)
        self._cache_thread = concurrent.futures.ThreadPoolExecutor(1, "runner-cache")
        self._cache_warned = False
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # between attempts

    def hold(self) -> None:
        """Keep requests from going out until ``release`` (cache hits are still answered)."""
        self._sending.clear()

    def release(self) -> None:
        self._sending.set()

    def client_for(self, preset: ModelPreset) -> AsyncOpenAI:
        key = (preset.engine, preset.base_url, preset.api_key_env)
        client = self._clients.get(key)
        if client is None:
            from openai import AsyncOpenAI

            api_key = api_key_for(preset)
            if preset.engine == "echo":  # the simulator loads with the first echo client
                from runner.wire.echo import ECHO_BASE_URL, echo_transport

                http = httpx2.AsyncClient(transport=echo_transport())
                client = AsyncOpenAI(
                    api_key=api_key, base_url=ECHO_BASE_URL, max_retries=0, http_client=http
                )
            else:
                self._secrets.add(api_key)
                client = AsyncOpenAI(api_key=api_key, base_url=preset.base_url, max_retries=0)
            self._clients[key] = client
        return client

    def endpoint_for(self, preset: ModelPreset) -> str:
        """The base URL calls of ``preset`` actually go to (``OPENAI_BASE_URL`` included)."""
        return str(self.client_for(preset).base_url).rstrip("/")

    def cache_key_for(self, preset: ModelPreset, request: Request, sample: int = 0) -> str:
        """The cache key of a request to ``preset``'s endpoint (each ``sample`` its own)."""
        return cache_key(self.endpoint_for(preset), request_key(request, sample))

    def limits_for(self, preset: ModelPreset) -> RateLimits:
        key = (self.endpoint_for(preset), preset.name)
        limits = self._limits.get(key)
        if limits is None:
            limits = self._limits[key] = RateLimits(preset.rpm, preset.tpm)
        return limits

    async def complete(
        self,
        preset: ModelPreset,
        request: Request,
        estimated_tokens: int,
        retry: RetryPolicy,
        timeout_s: float,
        on_delta: Callable[[str | None], None] | None = None,
        use_cache: bool = True,
        sample: int = 0,
        call_id: str | None = None,
    ) -> CallOutcome:
        """Answer from the cache, or call the API with retries; never raises for API failures.

        ``on_delta`` receives each streamed piece of the answer, and ``None`` when an attempt
        starts over (a retry), so a live display can clear what it showed. ``use_cache`` is
        false for requests whose answer the server must keep (server-side conversations);
        ``sample`` (a repeat of the same request) has a cache entry of its own. ``call_id``
        (the call's record id) is for transports that name calls; a streamed call needs none.
        """
        key = None
        if self.cache is not None and use_cache:
            key = self.cache_key_for(preset, request, sample)
            while True:
                hit = await self._cache_get(key)
                if hit is None:
                    leader = self._in_flight.get(key)
                    if leader is None:
                        break
                    # the same request is on its way: its answer will be ours
                    hit = await asyncio.shield(leader)
                    if hit is None:
                        continue  # it failed: ask again (or take the lead)
                    hit = Completion.from_cache(hit.to_cache())
                if on_delta is not None and hit.answer:
                    on_delta(hit.answer)
                return CallOutcome(hit, None, 0, True, 0.0)
            self._in_flight[key] = asyncio.get_running_loop().create_future()
        outcome: CallOutcome | None = None
        try:
            outcome = await self._call(
                preset, request, estimated_tokens, retry, timeout_s, on_delta
            )
        finally:
            if key is not None:
                done = outcome.completion if outcome is not None else None
                cacheable = done if done is not None and done.cacheable else None
                if cacheable is not None:
                    await self._cache_put(key, cacheable.to_cache())
                self._in_flight.pop(key).set_result(cacheable)
        return outcome

    async def _call(
        self,
        preset: ModelPreset,
        request: Request,
        estimated_tokens: int,
        retry: RetryPolicy,
        timeout_s: float,
        on_delta: Callable[[str | None], None] | None,
    ) -> CallOutcome:
        client = self.client_for(preset)
        limits = self.limits_for(preset)
        await self._sending.wait()
        attempt_errors: list[AttemptError] = []
        billed: list[Progress] = []

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
            # does not use up an attempt, but the call gives up after retry.max_wait_s, and
            # never sleeps past it.
            nonlocal free_retries
            failure = classify(state.outcome.exception())  # type: ignore[union-attr, arg-type]
            if failure.error.status == 429 and failure.retry_after_s is not None:
                free_retries += 1
            if (state.seconds_since_start or 0.0) + state.upcoming_sleep > retry.max_wait_s:
                return True
            return state.attempt_number - free_retries >= retry.max_attempts

        attempts = AsyncRetrying(
            sleep=self.sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda exc: classify(exc).retryable),
            reraise=True,
        )
        started = time.perf_counter()
        deadline = time.monotonic() + retry.max_wait_s
        try:
            async for attempt in attempts:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    progress = Progress()
                    try:
                        await limits.acquire(estimated_tokens, deadline)
                        async with self._slots:
                            started = time.perf_counter()
                            if on_delta is not None and number > 1:
                                on_delta(None)
                            stream = (
                                stream_response if request.api == "responses" else stream_completion
                            )
                            completion = await stream(
                                client, request.body, timeout_s, on_delta, progress
                            )
                    except Exception as exc:
                        error = classify(exc).error
                        was_charged = charged(exc, progress.responded)
                        attempt_errors.append(
                            AttemptError(number, error.type, error.status, was_charged)
                        )
                        if was_charged:
                            billed.append(progress)
                        raise
        except Exception as exc:  # every API failure becomes an error record
            error = classify(exc).error
            error.message = self._scrub(error.message)
            return CallOutcome(
                None,
                error,
                attempts.statistics.get("attempt_number", 1),
                False,
                time.perf_counter() - started,
                attempt_errors,
                billed,
            )
        return CallOutcome(
            completion,
            None,
            attempts.statistics["attempt_number"],
            False,
            time.perf_counter() - started,
            attempt_errors,
            billed,
        )

    async def create_conversation(
        self, preset: ModelPreset, retry: RetryPolicy, timeout_s: float
    ) -> str | CallError:
        """A new server-side Conversation (Responses API): its id, or why it could not be made."""
        client = self.client_for(preset)
        await self._sending.wait()
        try:
            async for attempt in retrying(retry, self.sleep):
                with attempt:
                    async with self._slots:
                        made = await client.post(
                            "/conversations",
                            body={},
                            cast_to=object,
                            options={"timeout": timeout_for(timeout_s)},
                        )
        except Exception as exc:
            error = classify(exc).error
            error.message = self._scrub(f"creating the conversation: {error.message}")
            return error
        conversation = made.get("id") if isinstance(made, dict) else None
        if not isinstance(conversation, str):
            return CallError("StreamError", f"creating the conversation gave no id: {made!r:.200}")
        return conversation

    async def cached(self, key: str) -> Completion | None:
        """The cached completion of ``key`` (``cache_key_for``), if the cache is on and has it."""
        return None if self.cache is None else await self._cache_get(key)

    async def remember(self, key: str, completion: Completion) -> None:
        """Cache a finished completion under ``key`` (nothing when the cache is off)."""
        if self.cache is not None and completion.cacheable:
            await self._cache_put(key, completion.to_cache())

    async def _cache_get(self, key: str) -> Completion | None:
        assert self.cache is not None
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(self._cache_thread, self.cache.get, key)
            return None if data is None else Completion.from_cache(data)
        except Exception as exc:  # a cache that fails is a miss, never a failed call
            self._warn_cache("read", exc)
            return None

    async def _cache_put(self, key: str, value: dict[str, Any]) -> None:
        assert self.cache is not None
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._cache_thread, self.cache.put, key, value)
        except Exception as exc:
            self._warn_cache("write", exc)

    def _warn_cache(self, what: str, exc: Exception) -> None:
        if not self._cache_warned:
            self._cache_warned = True
            log.warning(
                "response cache %s failed (%s: %s): calls go on without it; check cache.dir "
                "or set cache.enabled=false",
                what,
                type(exc).__name__,
                exc,
            )

    def scrub(self, text: str) -> str:
        """``text`` with every API key this gateway used replaced by ``***``."""
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret and len(secret) >= 8:
                text = text.replace(secret, "***")
        return text

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        self._cache_thread.shutdown(wait=True)
