"""The Batch API on the wire: uploading an input file and creating its batch, seeing how a
batch goes, reading its output and error files, and turning each line into the outcome of the
call it answers (as a streamed call's would be)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx2

from runner.base.record import AttemptError, CallError
from runner.base.schema import RetryPolicy
from runner.wire.chat_completions import parse_chat_completion
from runner.wire.completion import MalformedChunkError, Progress, json_object
from runner.wire.gateway import CallOutcome
from runner.wire.responses import ResponseFailedError, response_completion, responses_usage
from runner.wire.retry import classify, retrying

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)

ENDPOINTS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
T = TypeVar("T")


@dataclass
class BatchStatus:
    """A batch as a retrieve saw it."""

    id: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    total: int | None = None
    errors: list[tuple[str | None, str | None]] = field(default_factory=list)  # (code, message)

    @property
    def running(self) -> bool:
        return self.status in RUNNING


class BatchClient:
    """The Batch API calls of one job: ``endpoint`` is the API its requests go to, and every
    call is retried as calls are (``retry``), sleeping with ``sleep``; ``scrub`` takes API keys
    out of error messages."""

    def __init__(
        self,
        client: AsyncOpenAI,
        api: str,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]],
        scrub: Callable[[str], str],
    ) -> None:
        self.client, self.retry, self.sleep, self.scrub = client, retry, sleep, scrub
        self.endpoint = ENDPOINTS[api]

    async def send(self, name: str, data: bytes) -> tuple[str, str]:
        """Upload an input file and create its batch; returns (batch id, input file id)."""
        uploaded = await self.call(
            lambda: self.client.files.create(
                file=(name, data, "application/jsonl"), purpose="batch"
            )
        )
        batch = await self.call(
            lambda: self.client.batches.create(
                input_file_id=uploaded.id,
                endpoint=cast(Any, self.endpoint),
                completion_window="24h",
            )
        )
        return batch.id, uploaded.id

    async def status(self, batch_id: str) -> BatchStatus:
        """How a batch goes now."""
        batch = await self.call(lambda: self.client.batches.retrieve(batch_id))
        counts = batch.request_counts
        errors: Sequence[Any] = (batch.errors.data or []) if batch.errors else []
        return BatchStatus(
            id=batch.id,
            status=batch.status,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            completed=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            total=counts.total if counts else None,
            errors=[(e.code, e.message) for e in errors],
        )

    async def lines(self, file_id: str) -> dict[str, dict[str, Any]]:
        """An output or error file's lines, by ``custom_id`` (a line that is not one is
        logged and skipped)."""
        content = await self.call(lambda: self.client.files.content(file_id))
        lines = {}
        for number, raw in enumerate(content.text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json_object(json.loads(raw), "batch output line")
            except ValueError as exc:
                log.warning("file %s, line %d: not a batch output line (%s)", file_id, number, exc)
                continue
            lines[str(line.get("custom_id"))] = line
        return lines

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """One Batch API call, retried as calls are (``retry.*``)."""
        async for attempt in retrying(self.retry, self.sleep):
            with attempt:
                return await call()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def error(self, exc: BaseException, said: str, doing: str | None = None) -> CallError:
        """What a failed Batch API call says in a record, its message starting with ``said``;
        a failure that is not the API's (a bug) keeps its traceback in the log, saying what
        it was ``doing``."""
        import openai

        if not isinstance(exc, openai.OpenAIError):
            log.exception("unexpected error %s", doing or said)
        error = classify(exc).error
        error.message = self.scrub(f"{said}: {error.message}")
        return error

    def outcome(self, line: dict[str, Any], batch_id: str) -> CallOutcome:
        """A request's answer (or failure) from its line of the output or error file."""
        response = line.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            status, body = response["status_code"], response.get("body")
            if status < 400:
                return self._answer(body, batch_id)
            exc = self.client._make_status_error_from_response(
                httpx2.Response(status, json=body, request=httpx2.Request("POST", self.endpoint))
            )
            error = classify(exc).error
        else:
            raw = line.get("error")
            problem = raw if isinstance(raw, dict) else {}
            code, message = problem.get("code"), problem.get("message") or "no message"
            if code == "batch_expired":
                error = CallError(
                    "BatchExpired",
                    f"batch {batch_id} expired before this request was answered ({message}): "
                    "run the same command with resume=true to send it again",
                )
            else:
                error = CallError("BatchRequestFailed", f"{code or 'no code'}: {message}"[:500])
        error.message = self.scrub(error.message)
        return unsent(error, batch_id)

    def _answer(self, body: Any, batch_id: str) -> CallOutcome:
        try:
            if self.endpoint != ENDPOINTS["responses"]:
                completion = parse_chat_completion(body)
                return CallOutcome(completion, None, 1, False, None, batch_id=batch_id)
            response = json_object(body, "response")
            raw = response.get("usage")
            usage = None if raw is None else responses_usage(json_object(raw, "usage"))
            if response.get("status") == "failed":
                raw_error = response.get("error")
                problem = raw_error if isinstance(raw_error, dict) else {}
                failed = ResponseFailedError(
                    problem.get("code"), str(problem.get("message") or "no message")
                )
                error = classify(failed).error
                billed = [Progress(True, [], usage)] if usage is not None else []
                attempt = AttemptError(1, error.type, error.status, True)
                return CallOutcome(None, error, 1, False, None, [attempt], billed, batch_id)
            completion = response_completion(response, None, None, None, usage)
            return CallOutcome(completion, None, 1, False, None, batch_id=batch_id)
        except MalformedChunkError as exc:
            return unsent(classify(exc).error, batch_id)


def unsent(error: CallError, batch_id: str | None) -> CallOutcome:
    """A request that got no answer: one attempt, refused (nothing billed)."""
    attempt = AttemptError(1, error.type, error.status, False)
    return CallOutcome(None, error, 1, False, None, [attempt], [], batch_id)


def unanswered(batch: BatchStatus) -> CallOutcome:
    """A request a batch ended without answering: it failed, expired or was cancelled."""
    resume = "run the same command with resume=true to send it again"
    if batch.status == "failed":
        why = "; ".join(f"{c or 'no code'}: {m or 'no message'}" for c, m in batch.errors)
        error = CallError(
            "BatchFailed",
            f"batch {batch.id} failed ({why or 'no reason given'}): fix the cause, then {resume}",
        )
    elif batch.status == "expired":
        error = CallError(
            "BatchExpired",
            f"batch {batch.id} expired before this request was answered (the Batch API answers "
            f"within 24 h): {resume}",
        )
    elif batch.status == "cancelled":
        error = CallError(
            "BatchCancelled",
            f"batch {batch.id} was cancelled before this request was answered: {resume}",
        )
    else:
        error = CallError(
            "BatchMissing",
            f"batch {batch.id} ({batch.status}) has no answer for this request: {resume}",
        )
    return unsent(error, batch.id)
