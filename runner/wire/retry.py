"""Which failed calls are retried, and how long to wait: decided here and nowhere else."""

from __future__ import annotations

import datetime
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx2
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay

from runner.base.record import CallError
from runner.base.schema import RetryPolicy
from runner.wire.completion import IncompleteStreamError, MalformedChunkError
from runner.wire.limits import PauseTooLong
from runner.wire.responses import ResponseFailedError, StreamErrorEvent

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass
class Failure:
    """A classified exception: retry it or not, the server's requested wait, the record's error."""

    retryable: bool
    retry_after_s: float | None
    error: CallError


def classify(exc: BaseException) -> Failure:
    """Sort an exception from a call into retryable or final, and describe it for the record."""
    import openai  # loaded already: a call was made (runner.wire.gateway imports it with a client)

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status in RETRYABLE_STATUS or status >= 500
        code = getattr(exc, "code", None)
        if code == "context_length_exceeded":
            retryable = False
        if code in ("previous_response_not_found", "conversation_not_found"):
            return Failure(
                False,
                None,
                CallError(
                    type(exc).__name__,
                    "the server no longer has the response this conversation continues from "
                    "(stored responses expire): ask it again in a new hydra.run.dir; "
                    + _message(exc),
                    status,
                ),
            )
        if "insufficient_quota" in (code, getattr(exc, "type", None)):
            # out of credit: asking again cannot succeed until someone pays
            return Failure(False, None, CallError("InsufficientQuota", _message(exc), status))
        return Failure(
            retryable,
            retry_after(exc.response.headers) if retryable else None,
            CallError(type(exc).__name__, _message(exc), status),
        )
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return Failure(True, None, CallError("Timeout", _message(exc) or "the call timed out"))
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return Failure(True, None, CallError("ConnectionError", _message(exc)))
    if isinstance(
        exc, json.JSONDecodeError | MalformedChunkError | IncompleteStreamError | openai.APIError
    ):
        # a malformed chunk, a stream closed mid-answer, or one that ends in an error event
        return Failure(True, None, CallError("StreamError", _message(exc)))
    if isinstance(exc, ResponseFailedError):
        return Failure(exc.retryable, None, CallError("ResponseFailed", _message(exc)))
    if isinstance(exc, StreamErrorEvent):
        return Failure(True, None, CallError("StreamError", _message(exc)))
    if isinstance(exc, PauseTooLong):
        return Failure(False, None, CallError("RateLimitWait", _message(exc)))
    return Failure(False, None, CallError(type(exc).__name__, _message(exc)))


def retrying(retry: RetryPolicy, sleep: Callable[[float], Awaitable[None]]) -> AsyncRetrying:
    """Attempts of a call that is not itself an answer (creating a conversation, the Batch
    API's files and batches): what ``classify`` finds retryable is tried again after a
    jittered backoff, up to ``retry.max_attempts`` or ``retry.max_wait_s``; the last failure
    is raised."""
    return AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(retry.max_attempts) | stop_after_delay(retry.max_wait_s),
        wait=lambda state: backoff_s(
            state.attempt_number, retry.initial_backoff_s, retry.max_backoff_s, None
        ),
        retry=retry_if_exception(lambda exc: classify(exc).retryable),
        reraise=True,
    )


def retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds a server asks us to wait: ``retry-after-ms``, else ``retry-after`` (secs or date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unparseable: fall back to our own backoff
    if parsed.tzinfo is None:  # "-0000" in an HTTP date still means UTC
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return max(parsed.timestamp() - time.time(), 0.0)


def backoff_s(attempt: int, initial: float, maximum: float, retry_after_s: float | None) -> float:
    """Wait before attempt ``attempt + 1``: full-jitter exponential, or at least what was asked."""
    jittered = random.uniform(0, min(maximum, initial * 2 ** (attempt - 1)))
    if retry_after_s is not None:
        return retry_after_s + random.uniform(0, min(1.0, initial))
    return jittered


def charged(exc: BaseException, responded: bool) -> bool | None:
    """Whether the server may bill a failed attempt: it does once it has started answering
    (``responded``), not for an error status or a connection it never accepted; a connection
    that broke before any answer leaves it unknown."""
    import openai

    if responded:
        return True
    if isinstance(exc, openai.APIStatusError | PauseTooLong):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, httpx2.ConnectError | httpx2.ConnectTimeout):
            return False
        cause = cause.__cause__ or cause.__context__
    return None


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
