"""Gateway.complete against the fake OpenAI server: streaming, usage, retries, cache, limits."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import httpx2
import openai
import pytest
from conftest import FAKE_KEY
from fake_openai import Behaviour, FakeOpenAIServer, free_port

import runner.wire.gateway as gateway_module
from runner.base.errors import CredentialsError
from runner.base.record import AttemptError
from runner.base.schema import ModelPreset, RetryPolicy
from runner.core.executor import settled_heap
from runner.wire.cache import ResponseCache
from runner.wire.gateway import CallOutcome, Gateway
from runner.wire.limits import RateLimits
from runner.wire.request import Request
from runner.wire.retry import backoff_s, classify, retry_after

KEY_ENV = "RUNNER_TEST_KEY"
MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is the capital of France"},
]
ANSWER = "fake answer to: what is the capital of France"
ANSWER_WORDS = len(ANSWER.split())  # the fake server counts words as tokens
PROMPT_TOKENS = (7 + 2) + (7 + 6)  # 7 per message plus its words
PARAMS = {"temperature": 0.3, "max_tokens": 50, "seed": 7}
FAST = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)


def preset_for(base_url: str) -> ModelPreset:
    return ModelPreset(
        name="gpt-4.1-mini",
        engine="openai",
        base_url=base_url,
        api_key_env=KEY_ENV,
        context_window=100000,
        max_output_tokens=1000,
    )


@pytest.fixture
def preset(fake_server: FakeOpenAIServer) -> ModelPreset:
    return preset_for(fake_server.base_url)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    response_cache = ResponseCache(tmp_path / "cache")
    yield response_cache
    response_cache.close()


async def _complete(
    gateway: Gateway,
    preset: ModelPreset,
    messages: list[dict[str, str]] | None = None,
    params: dict[str, Any] | None = None,
    *,
    retry: RetryPolicy = FAST,
    timeout_s: float = 10.0,
) -> CallOutcome:
    body = {
        "model": preset.name,
        "messages": MESSAGES if messages is None else messages,
        **(PARAMS if params is None else params),
    }
    return await gateway.complete(preset, Request("chat", body), 30, retry, timeout_s)


def complete(
    preset: ModelPreset,
    messages: list[dict[str, str]] | None = None,
    params: dict[str, Any] | None = None,
    *,
    retry: RetryPolicy = FAST,
    timeout_s: float = 10.0,
    cache: ResponseCache | None = None,
) -> CallOutcome:
    """One call through a fresh gateway, closed afterwards."""

    async def main() -> CallOutcome:
        gateway = Gateway(concurrency=4, cache=cache)
        try:
            return await _complete(
                gateway, preset, messages, params, retry=retry, timeout_s=timeout_s
            )
        finally:
            await gateway.aclose()

    return asyncio.run(main())


def timed(preset: ModelPreset, **kwargs: Any) -> tuple[CallOutcome, float]:
    start = time.monotonic()
    outcome = complete(preset, **kwargs)
    return outcome, time.monotonic() - start


def assert_answered(outcome: CallOutcome, attempts: int) -> None:
    assert outcome.error is None, outcome.error
    assert outcome.completion is not None
    assert outcome.completion.answer == ANSWER
    assert outcome.attempts == attempts


def assert_failed(outcome: CallOutcome, type_: str, status: int | None, attempts: int) -> None:
    assert outcome.completion is None
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.status) == (type_, status), outcome.error
    assert outcome.error.message
    assert outcome.attempts == attempts
    assert outcome.cache_hit is False


# ---------------------------------------------------------------- streaming and usage


def test_streams_answer_with_usage_and_provenance(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    outcome = complete(preset)

    assert_answered(outcome, attempts=1)
    assert outcome.cache_hit is False
    c = outcome.completion
    assert c is not None
    assert c.finish_reason == "stop"
    assert c.usage is not None
    assert c.usage.source == "api"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (
        PROMPT_TOKENS,
        ANSWER_WORDS,
        PROMPT_TOKENS + ANSWER_WORDS,
    )
    assert (c.usage.cached_tokens, c.usage.reasoning_tokens) == (0, 0)
    assert c.response_id is not None and c.response_id.startswith("chatcmpl-fake-")
    assert c.served_model == "gpt-4.1-mini"
    assert c.system_fingerprint == "fp_fake"
    assert c.ttft_s is not None and c.ttft_s >= 0
    assert outcome.latency_s is not None and outcome.latency_s >= c.ttft_s

    [body] = fake_server.requests
    assert body["model"] == "gpt-4.1-mini"
    assert body["messages"] == MESSAGES
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    for name, value in PARAMS.items():
        assert body[name] == value


def test_no_usage_chunk_leaves_usage_none(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue("no_usage")
    outcome = complete(preset)
    assert_answered(outcome, attempts=1)
    assert outcome.completion is not None
    assert outcome.completion.usage is None


def test_usage_on_content_chunks_last_one_wins(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.usage_on_content_chunks = True
    outcome = complete(preset)
    assert_answered(outcome, attempts=1)
    usage = outcome.completion.usage if outcome.completion else None
    assert usage is not None
    # running counts per chunk (3, 6, 9 words): only the last is the whole answer
    assert usage.completion_tokens == ANSWER_WORDS
    assert usage.total_tokens == PROMPT_TOKENS + ANSWER_WORDS


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize(
    "behaviour",
    [Behaviour("429", retry_after=0.3), Behaviour("429", retry_after_ms=300)],
    ids=["retry-after", "retry-after-ms"],
)
def test_429_waits_as_asked_then_answers(
    fake_server: FakeOpenAIServer, preset: ModelPreset, behaviour: Behaviour
) -> None:
    fake_server.enqueue(behaviour, "ok")
    outcome, elapsed = timed(preset)
    assert_answered(outcome, attempts=2)
    assert elapsed >= 0.3
    assert fake_server.request_count == 2


def test_retry_after_beyond_the_sdk_cap_is_honoured() -> None:
    headers = httpx2.Headers({"retry-after": "300"})
    assert retry_after(headers) == 300
    assert retry_after(httpx2.Headers({"retry-after-ms": "300000"})) == 300
    assert backoff_s(1, 0.01, 0.05, 300.0) >= 300

    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(429, headers=headers, request=request)
    failure = classify(openai.RateLimitError("rate limited", response=response, body=None))
    assert failure.retryable
    assert failure.retry_after_s == 300
    assert (failure.error.type, failure.error.status) == ("RateLimitError", 429)


@pytest.mark.parametrize("zone", ["GMT", "+0000", "-0000"])
def test_retry_after_as_http_date(zone: str) -> None:
    value = time.strftime(f"%a, %d %b %Y %H:%M:%S {zone}", time.gmtime(time.time() + 30))
    wait = retry_after(httpx2.Headers({"retry-after": value}))
    assert wait is not None and 25 <= wait <= 31


@pytest.mark.parametrize("value", ["soon", "", "-5"])
def test_retry_after_unusable_header(value: str) -> None:
    wait = retry_after(httpx2.Headers({"retry-after": value}))
    assert wait is None or wait == 0


def test_unparseable_retry_after_still_retries(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue(Behaviour("429", retry_after="soon"), "ok")
    outcome = complete(preset)
    assert_answered(outcome, attempts=2)


def test_server_errors_are_retried(fake_server: FakeOpenAIServer, preset: ModelPreset) -> None:
    fake_server.enqueue("500", "503", "ok")
    outcome = complete(preset)
    assert_answered(outcome, attempts=3)
    assert fake_server.request_count == 3


def test_429_storm_becomes_an_error_outcome(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue(*["429"] * (FAST.max_attempts + 2))  # no Retry-After: attempts count
    outcome = complete(preset)
    assert_failed(outcome, "RateLimitError", 429, attempts=FAST.max_attempts)
    assert fake_server.request_count == FAST.max_attempts


def test_429_with_retry_after_uses_no_attempt_until_max_wait(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    paced = [Behaviour("429", retry_after_ms=10)] * (FAST.max_attempts + 2)
    fake_server.enqueue(*paced, "ok")
    outcome = complete(preset)  # more 429s than attempts, yet it is answered
    assert_answered(outcome, attempts=FAST.max_attempts + 3)

    fake_server.reset()
    fake_server.enqueue(*[Behaviour("429", retry_after_ms=100)] * 50)
    started = time.monotonic()
    outcome = complete(preset, retry=dataclasses.replace(FAST, max_wait_s=0.5))
    assert outcome.error is not None and outcome.error.status == 429
    assert outcome.attempts > FAST.max_attempts
    assert time.monotonic() - started < 5  # gave up at max_wait_s, not after 50 answers


def test_401_is_final_and_does_not_leak_the_key(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue("401", "ok")
    outcome = complete(preset)
    assert_failed(outcome, "AuthenticationError", 401, attempts=1)
    assert outcome.error is not None
    assert FAKE_KEY not in outcome.error.message
    assert fake_server.request_count == 1


def test_context_length_exceeded_is_final(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue("400_context", "ok")
    outcome = complete(preset)
    assert_failed(outcome, "BadRequestError", 400, attempts=1)
    assert outcome.error is not None
    assert "context length" in outcome.error.message
    assert fake_server.request_count == 1


def test_missing_api_key_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, preset: ModelPreset
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(CredentialsError, match=KEY_ENV):
        complete(preset)


def test_every_attempt_hangs_is_a_timeout(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue(*[Behaviour("hang", hang_s=3)] * FAST.max_attempts)
    outcome, elapsed = timed(preset, timeout_s=0.5)
    assert_failed(outcome, "Timeout", None, attempts=FAST.max_attempts)
    assert elapsed >= 0.5 * FAST.max_attempts


def test_one_hang_then_answer(fake_server: FakeOpenAIServer, preset: ModelPreset) -> None:
    fake_server.enqueue(Behaviour("hang", hang_s=3), "ok")
    outcome = complete(preset, timeout_s=0.5)
    assert_answered(outcome, attempts=2)


def test_cut_stream_is_retried(fake_server: FakeOpenAIServer, preset: ModelPreset) -> None:
    fake_server.enqueue("cut", "ok")
    outcome = complete(preset)
    assert_answered(outcome, attempts=2)
    assert outcome.completion is not None
    assert outcome.completion.usage is not None  # from the good attempt, not a partial one


def test_cut_on_every_attempt_is_a_connection_error(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue(*["cut"] * FAST.max_attempts)
    outcome = complete(preset)
    assert_failed(outcome, "ConnectionError", None, attempts=FAST.max_attempts)


@pytest.mark.parametrize("kind", ["malformed", "bad_shape"])  # not JSON; JSON of another shape
def test_a_broken_chunk_is_retried(
    fake_server: FakeOpenAIServer, preset: ModelPreset, kind: str
) -> None:
    fake_server.enqueue(kind, "ok")
    outcome = complete(preset)
    assert_answered(outcome, attempts=2)


def test_chunk_of_the_wrong_shape_on_every_attempt_is_a_stream_error(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue(*["bad_shape"] * FAST.max_attempts)
    outcome = complete(preset)
    assert_failed(outcome, "StreamError", None, attempts=FAST.max_attempts)
    assert outcome.error is not None and "choices is not a list" in outcome.error.message


def test_server_down_is_a_connection_error() -> None:
    outcome = complete(preset_for(f"http://127.0.0.1:{free_port()}/v1"))
    assert_failed(outcome, "ConnectionError", None, attempts=FAST.max_attempts)


# ---------------------------------------------------------------- held requests


def test_a_held_gateway_sends_nothing_until_released(
    fake_server: FakeOpenAIServer, preset: ModelPreset, cache: ResponseCache
) -> None:
    complete(preset, cache=cache)  # the first message is answered and cached
    other = [*MESSAGES[:1], {"role": "user", "content": "and of Spain"}]

    async def main() -> tuple[CallOutcome, int, CallOutcome]:
        gateway = Gateway(concurrency=4, cache=cache)
        gateway.hold()
        try:
            waiting = asyncio.create_task(_complete(gateway, preset, other))
            hit = await _complete(gateway, preset)  # held or not, a cache hit is answered
            await asyncio.sleep(0.3)
            sent_while_held = fake_server.request_count - 1
            gateway.release()
            return hit, sent_while_held, await waiting
        finally:
            await gateway.aclose()

    hit, sent_while_held, released = asyncio.run(main())
    assert hit.cache_hit is True
    assert sent_while_held == 0
    assert released.error is None and released.cache_hit is False
    assert fake_server.request_count == 2


def test_settled_heap_freezes_the_heap_only_while_inside() -> None:
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), settled_heap():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("a job failed")
    assert gc.get_freeze_count() == 0


# ---------------------------------------------------------------- cache


def test_cache_answers_an_identical_request(
    fake_server: FakeOpenAIServer, preset: ModelPreset, cache: ResponseCache
) -> None:
    first = complete(preset, cache=cache)
    assert_answered(first, attempts=1)
    assert first.cache_hit is False

    second = complete(preset, cache=cache)
    assert second.cache_hit is True
    assert second.attempts == 0
    assert second.error is None
    # usage and ids kept; no call was made, so there is no time to first token
    assert second.completion == dataclasses.replace(first.completion, ttft_s=None)
    assert fake_server.request_count == 1

    other_param = complete(preset, params={**PARAMS, "temperature": 0.9}, cache=cache)
    other_message = complete(
        preset,
        messages=[*MESSAGES[:1], {"role": "user", "content": "and of Spain"}],
        cache=cache,
    )
    assert not other_param.cache_hit and not other_message.cache_hit
    assert fake_server.request_count == 3


def test_errors_are_not_cached(
    fake_server: FakeOpenAIServer, preset: ModelPreset, cache: ResponseCache
) -> None:
    fake_server.enqueue("401")
    failed = complete(preset, cache=cache)
    assert failed.error is not None

    retried = complete(preset, cache=cache)
    assert retried.cache_hit is False
    assert_answered(retried, attempts=1)
    assert fake_server.request_count == 2


def test_cache_is_shared_across_instances(
    fake_server: FakeOpenAIServer, preset: ModelPreset, tmp_path: Path
) -> None:
    writer = ResponseCache(tmp_path / "cache")
    reader = ResponseCache(tmp_path / "cache")  # as a second process would open it
    try:
        assert complete(preset, cache=writer).cache_hit is False
        hit = complete(preset, cache=reader)
        assert hit.cache_hit is True
        assert hit.completion is not None and hit.completion.answer == ANSWER
        assert fake_server.request_count == 1
    finally:
        writer.close()
        reader.close()


# ---------------------------------------------------------------- concurrency and limits


def test_concurrency_limit_holds(
    fake_server: FakeOpenAIServer, preset: ModelPreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_server.latency_s = 0.2
    in_flight = peak = 0
    real = gateway_module.stream_completion

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await real(*args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(gateway_module, "stream_completion", counted)

    async def main() -> list[CallOutcome]:
        gateway = Gateway(concurrency=2)
        try:
            return await asyncio.gather(*(_complete(gateway, preset) for _ in range(6)))
        finally:
            await gateway.aclose()

    start = time.monotonic()
    outcomes = asyncio.run(main())
    elapsed = time.monotonic() - start

    for outcome in outcomes:
        assert_answered(outcome, attempts=1)
    assert peak == 2
    assert fake_server.request_count == 6
    assert elapsed >= 3 * 0.2


def test_requests_per_minute_are_metered() -> None:
    async def main() -> float:
        limits = RateLimits(rpm=600, tpm=None)  # 10 per second
        start = time.monotonic()
        for _ in range(15):
            await limits.acquire(100)
        return time.monotonic() - start

    assert asyncio.run(main()) >= 0.4


def test_pause_holds_the_next_acquire() -> None:
    async def main() -> float:
        limits = RateLimits(rpm=None, tpm=None)
        limits.pause(0.3)
        limits.pause(0.1)  # a shorter pause never shortens a longer one
        start = time.monotonic()
        await limits.acquire(0)
        return time.monotonic() - start

    assert asyncio.run(main()) >= 0.25


def test_retry_after_pauses_other_requests_to_the_endpoint(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    fake_server.enqueue(Behaviour("429", retry_after=0.4))

    async def main() -> tuple[CallOutcome, CallOutcome, float, float]:
        gateway = Gateway(concurrency=4)
        try:
            limits = gateway.limits_for(preset)
            paused = asyncio.Event()
            pause = limits.pause
            paused_at = 0.0

            def spy(seconds: float) -> None:
                nonlocal paused_at
                paused_at = time.monotonic()
                pause(seconds)
                paused.set()

            limits.pause = spy  # type: ignore[method-assign]
            first = asyncio.create_task(_complete(gateway, preset))
            await paused.wait()
            second = await _complete(gateway, preset)  # another job, same endpoint
            second_done = time.monotonic()
            return await first, second, paused_at, second_done
        finally:
            await gateway.aclose()

    first, second, paused_at, second_done = asyncio.run(main())
    assert_answered(first, attempts=2)
    assert_answered(second, attempts=1)
    assert second_done - paused_at >= 0.35
    assert fake_server.request_count == 3


# ---------------------------------------------------------------- limits, keys, single flight


@pytest.mark.slow
def test_a_limit_under_sixty_requests_a_minute_is_honoured(
    fake_server: FakeOpenAIServer, preset: ModelPreset
) -> None:
    paced = dataclasses.replace(preset, rpm=30)  # one every 2 s

    async def main() -> list[CallOutcome]:
        gateway = Gateway(concurrency=6)
        try:
            return await asyncio.gather(*(_complete(gateway, paced) for _ in range(6)))
        finally:
            await gateway.aclose()

    outcomes = asyncio.run(main())
    assert [o.error for o in outcomes] == [None] * 6
    arrivals = sorted(fake_server.arrivals)
    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[0] >= 9.9  # 5 gaps of 2 s: 6 calls take at least 10 s
    assert min(b - a for a, b in itertools.pairwise(arrivals)) >= 1.9


def test_identical_requests_in_flight_are_sent_once(
    fake_server: FakeOpenAIServer, preset: ModelPreset, cache: ResponseCache
) -> None:
    fake_server.latency_s = 0.3

    async def main() -> list[CallOutcome]:
        gateway = Gateway(concurrency=8, cache=cache)
        try:
            return await asyncio.gather(*(_complete(gateway, preset) for _ in range(5)))
        finally:
            await gateway.aclose()

    outcomes = asyncio.run(main())
    assert fake_server.request_count == 1
    assert sorted(o.cache_hit for o in outcomes) == [False, True, True, True, True]
    assert {o.completion.answer for o in outcomes if o.completion} == {ANSWER}
    assert [o.attempts for o in outcomes if o.cache_hit] == [0, 0, 0, 0]


def test_when_the_request_in_flight_fails_the_others_ask_for_themselves(
    fake_server: FakeOpenAIServer, preset: ModelPreset, cache: ResponseCache
) -> None:
    fake_server.latency_s = 0.3
    fake_server.enqueue("401")  # final for the first; the next request is answered

    async def main() -> list[CallOutcome]:
        gateway = Gateway(concurrency=8, cache=cache)
        try:
            return await asyncio.gather(*(_complete(gateway, preset) for _ in range(3)))
        finally:
            await gateway.aclose()

    outcomes = asyncio.run(main())
    assert fake_server.request_count == 2
    assert [o.error.type for o in outcomes if o.error] == ["AuthenticationError"]
    assert sorted(o.cache_hit for o in outcomes if o.error is None) == [False, True]


def test_the_base_url_from_the_environment_keys_cache_and_limits(
    fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, cache: ResponseCache
) -> None:
    unset = dataclasses.replace(preset_for(fake_server.base_url), base_url=None)
    other = FakeOpenAIServer().start()
    try:

        async def main(url: str) -> tuple[str, CallOutcome, tuple[str, str]]:
            monkeypatch.setenv("OPENAI_BASE_URL", url)
            gateway = Gateway(concurrency=2, cache=cache)
            try:
                outcome = await _complete(gateway, unset)
                return gateway.endpoint_for(unset), outcome, next(iter(gateway._limits))
            finally:
                await gateway.aclose()

        endpoint, first, limit_key = asyncio.run(main(fake_server.base_url))
        assert endpoint == fake_server.base_url
        assert limit_key == (fake_server.base_url, "gpt-4.1-mini")
        assert (first.cache_hit, fake_server.request_count) == (False, 1)
        # the same model and messages at another endpoint: not the first one's answer
        endpoint, second, _ = asyncio.run(main(other.base_url))
        assert endpoint == other.base_url
        assert (second.cache_hit, other.request_count) == (False, 1)
    finally:
        other.stop()


def test_cache_reads_and_writes_run_off_the_event_loop(
    fake_server: FakeOpenAIServer, preset: ModelPreset, cache: ResponseCache
) -> None:
    threads: list[str] = []
    get, put = cache.get, cache.put

    def spy_get(key: str) -> Any:
        threads.append(threading.current_thread().name)
        return get(key)

    def spy_put(key: str, value: Any) -> None:
        threads.append(threading.current_thread().name)
        put(key, value)

    cache.get, cache.put = spy_get, spy_put  # type: ignore[method-assign]
    assert_answered(complete(preset, cache=cache), attempts=1)
    assert len(threads) == 2
    assert all(name.startswith("runner-cache") for name in threads)


def test_a_cache_that_fails_is_a_miss_not_a_failed_call(
    fake_server: FakeOpenAIServer,
    preset: ModelPreset,
    cache: ResponseCache,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def timeout(*args: Any) -> Any:
        raise diskcache.Timeout("database is locked")

    cache.get = cache.put = timeout  # type: ignore[method-assign]
    assert_answered(complete(preset, cache=cache), attempts=1)
    assert fake_server.request_count == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("response cache read failed (Timeout: database is locked)")


def test_no_sleep_goes_past_max_wait(fake_server: FakeOpenAIServer, preset: ModelPreset) -> None:
    fake_server.enqueue(Behaviour("429", retry_after=30), Behaviour("500"), "ok")
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> tuple[CallOutcome, CallOutcome]:
        gateway = Gateway(concurrency=4)
        gateway.sleep = record_sleep
        try:
            short = dataclasses.replace(FAST, max_wait_s=5.0)
            first = await _complete(gateway, preset, retry=short)
            # the endpoint is now paused for 30 s: a call with 5 s left gives up at once
            second = await _complete(gateway, preset, retry=short)
            return first, second
        finally:
            await gateway.aclose()

    first, second = asyncio.run(main())
    assert first.error is not None and (first.error.type, first.error.status) == (
        "RateLimitError",
        429,
    )
    assert first.attempts == 1
    assert second.error is not None and second.error.type == "RateLimitWait"
    assert second.attempt_errors == [AttemptError(1, "RateLimitWait", None, False)]
    assert slept == []
    assert fake_server.request_count == 1


def test_a_quota_429_is_final(fake_server: FakeOpenAIServer, preset: ModelPreset) -> None:
    fake_server.enqueue(Behaviour("quota"), "ok")
    outcome = complete(preset)
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.status, outcome.attempts) == (
        "InsufficientQuota",
        429,
        1,
    )
    assert outcome.error.message.startswith("Error code: 429")
    assert fake_server.request_count == 1
