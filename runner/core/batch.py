"""A job through OpenAI's Batch API (``batch=true``): half the price, answers within 24 hours.

A batch job asks its conversations as a streamed job does (``runner.core.job``: the same turns,
history, tools, scoring and records), but no call goes out on its own. Every call waits for
its round: once each conversation still going waits for an answer, their requests go out
together as one batch (or several, past the Batch API's limits), and the answers come back
together. A turn needs the answers of the turns before it, so a conversation of three turns
takes three rounds, and each round of tool calls one more.

Which batches are out is kept in ``batch.json`` beside the transcript, written the moment a
batch is created: a run killed while it waits picks up the same batches on ``resume=true``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx2
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay

from runner.base.errors import ConfigError
from runner.base.record import AttemptError, CallError, TranscriptRecord
from runner.base.transcript import TranscriptWriter
from runner.core.config import ModelPreset, Prices, RetryPolicy
from runner.core.job import (
    JobPlan,
    JobResult,
    RecordSink,
    TranscriptWriteError,
    _JobRunner,
    _open_writer,
    _resume,
    ask_again,
    error_type,
    failed_call,
    record_id,
)
from runner.core.questions import Conversation, Turn
from runner.core.tools import ToolCall, ToolResult
from runner.core.turn import Step
from runner.wire.completion import Choice, Completion, MalformedChunkError, Progress, json_object
from runner.wire.completion import _usage as chat_usage
from runner.wire.gateway import CallOutcome, Gateway
from runner.wire.request import Request
from runner.wire.responses import ResponseFailedError, _completion
from runner.wire.responses import _usage as responses_usage
from runner.wire.retry import backoff_s, classify

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types import Batch

    from runner.core.history import Exchange
    from runner.core.turn import ConversationState

log = logging.getLogger(__name__)

# The Batch API's limits on one input file; lower them (tests) to see a round split.
MAX_REQUESTS = 50_000
MAX_BYTES = 200_000_000
STATE_NAME = "batch.json"
INPUT_DIR = "batch"  # the input files as uploaded, beside the transcript
ENDPOINTS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
# Requests a batch left unanswered as a whole: resume sends them again, in a new batch.
UNANSWERED = frozenset({"BatchFailed", "BatchExpired", "BatchCancelled", "BatchMissing"})

T = TypeVar("T")


def batch_prices(prices: Prices) -> Prices:
    """What a call through the Batch API costs: the preset's batch prices, and cached input at
    half the cached price (price tables give none for batches); unknown without batch prices."""
    cached = prices.cached_input / 2 if prices.cached_input is not None else prices.input_batch
    return Prices(input=prices.input_batch, cached_input=cached, output=prices.output_batch)


def parse_chat_completion(body: Any) -> Completion:
    """A ``chat.completion`` object (not streamed) as a ``Completion``: each choice's text,
    refusal, tool calls and finish_reason, and the usage. ``MalformedChunkError`` for a body
    of the wrong shape."""
    raw = json_object(body, "chat.completion")
    choices = raw.get("choices")
    if not isinstance(choices, list):
        raise MalformedChunkError(f"choices is not a list: {choices!r:.200}")
    parsed: list[Choice] = []
    for item in choices:
        item = json_object(item, "choice")
        message = json_object(item.get("message") or {}, "message")
        index = item.get("index") or 0
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise MalformedChunkError(f"choice index is not a number: {index!r:.200}")
        content, refusal = message.get("content"), message.get("refusal")
        for name, value in (("content", content), ("refusal", refusal)):
            if value is not None and not isinstance(value, str):
                raise MalformedChunkError(f"message.{name} is not text: {value!r:.200}")
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise MalformedChunkError(f"message.tool_calls is not a list: {calls!r:.200}")
        choice = Choice(index, content or "", refusal or None, item.get("finish_reason"))
        for call in calls:
            call = json_object(call, "tool call")
            function = json_object(call.get("function") or {}, "tool call function")
            choice.tool_calls.append(
                ToolCall(
                    str(call.get("id") or ""),
                    str(function.get("name") or ""),
                    str(function.get("arguments") or ""),
                )
            )
        parsed.append(choice)
    usage = raw.get("usage")
    return Completion(
        choices=sorted(parsed, key=lambda c: c.index),
        usage=None if usage is None else chat_usage(json_object(usage, "usage")),
        response_id=raw.get("id"),
        served_model=raw.get("model"),
        system_fingerprint=raw.get("system_fingerprint"),
        ttft_s=None,
        finished=bool(parsed) and all(c.finish_reason for c in parsed),
    )


@dataclass
class BatchOutcome(CallOutcome):
    """A call sent in a batch (``batch_id`` null: it could not be sent)."""

    batch_id: str | None = None


@dataclass
class BatchEntry:
    """One batch sent: its id and input file, the round it belongs to, the record ids of its
    requests (each request's ``custom_id``), and whether its answers are all written."""

    id: str
    input_file_id: str
    round: int
    endpoint: str
    record_ids: list[str]
    status: str | None = None  # as last seen
    collected: bool = False


@dataclass
class BatchState:
    """The batches of one job, in ``batch.json`` (rewritten whole, atomically, on each change)."""

    path: Path
    base_url: str | None
    batches: list[BatchEntry] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, base_url: str | None) -> BatchState:
        if not path.exists():
            return cls(path, base_url)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            batches = [BatchEntry(**b) for b in data["batches"]]
            theirs = data["base_url"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} cannot be read ({type(exc).__name__}: {exc}): fix it, or remove it "
                "to send the requests of its batches again"
            ) from None
        if theirs != base_url and any(not b.collected for b in batches):
            raise ConfigError(
                f"{path} holds batches sent to base_url {theirs}, and this run sends to "
                f"{base_url}: resume with the same model.base_url (and OPENAI_BASE_URL), or "
                "choose a new hydra.run.dir / hydra.sweep.dir"
            )
        return cls(path, base_url, batches)

    def waiting(self) -> list[BatchEntry]:
        """The batches whose answers are not all written yet."""
        return [b for b in self.batches if not b.collected]

    def save(self) -> None:
        data = {"base_url": self.base_url, "batches": [asdict(b) for b in self.batches]}
        fresh = self.path.with_name(self.path.name + ".tmp")
        _write(fresh, (json.dumps(data, indent=1) + "\n").encode())
        fresh.replace(self.path)


async def execute_batch(
    plan: JobPlan, gateway: Gateway, sink: RecordSink | None, base_url: str | None
) -> JobResult:
    """Ask every conversation of a plan through the Batch API; returns the job's totals.

    Called by ``runner.core.job.execute_job`` (which holds the transcript's lock) for
    ``batch=true``. Records are on disk as each round's answers come back.
    """
    state = BatchState.load(plan.info.output_dir / STATE_NAME, base_url)
    done = _resume(plan, base_url)
    if state.waiting() and not plan.run.resume:
        raise ConfigError(
            f"{state.path} names batches still out: pass resume=true to wait for them, or "
            "choose a new hydra.run.dir / hydra.sweep.dir"
        )
    done = _ask_unanswered_again(plan, done)
    result = JobResult(failed_score=plan.run.failed_score)
    with _open_writer(plan.transcript) as writer:
        rounds = _Rounds(plan, gateway, state, base_url)
        runner = _BatchRunner(plan, rounds, writer, result, done, base_url, sink)
        asked = [(c, s) for s in range(plan.run.repeat) for c in plan.conversations]
        rounds.active = len(asked)

        async def conversation(conv: Conversation, sample: int) -> None:
            try:
                await runner.ask(conv, sample)
            finally:
                rounds.left()

        try:
            async with asyncio.TaskGroup() as group:
                for conv, sample in asked:
                    group.create_task(conversation(conv, sample))
                group.create_task(rounds.drive())
        except* TranscriptWriteError as failed:
            raise failed.exceptions[0] from None
    return result


def _ask_unanswered_again(
    plan: JobPlan, done: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Resume sends again what a batch left unanswered as a whole (it failed, expired or was
    cancelled), and with ``resume_failed`` every failed call: those turns, and the turns
    skipped after them, move to ``superseded.jsonl``."""

    def picked(record: dict[str, Any]) -> bool:
        return error_type(record) in UNANSWERED or (plan.run.resume_failed and failed_call(record))

    why = "of requests a batch left unanswered or that failed (and the turns skipped after them)"
    return ask_again(plan, done, picked, why)


@dataclass
class _TurnKey:
    """The turn a conversation's task is asking, and how many calls it has made so far."""

    conv: Conversation
    number: int
    sample: int
    calls: int = 0


_TURN: contextvars.ContextVar[_TurnKey] = contextvars.ContextVar("runner_batch_turn")


class _BatchRunner(_JobRunner):
    """A job's conversations asked as a streamed job asks them, at the Batch API's prices."""

    def __init__(
        self,
        plan: JobPlan,
        rounds: _Rounds,
        writer: TranscriptWriter,
        result: JobResult,
        done: dict[str, dict[str, Any]],
        base_url: str | None,
        sink: RecordSink | None,
    ) -> None:
        # the turns call ``complete`` (and ``create_conversation``) only: rounds stand in
        super().__init__(plan, cast(Gateway, rounds), writer, result, done, base_url, sink)
        self.prices = batch_prices(plan.run.model.prices)

    async def _ask_turn(
        self,
        conv: Conversation,
        number: int,
        turn: Turn,
        sample: int,
        history: list[Exchange],
        state: ConversationState,
        steps_written: list[int],
    ) -> TranscriptRecord:
        token = _TURN.set(_TurnKey(conv, number, sample))
        try:
            return await super()._ask_turn(
                conv, number, turn, sample, history, state, steps_written
            )
        finally:
            _TURN.reset(token)

    def _step_records(
        self,
        conv: Conversation,
        number: int,
        turn: Turn,
        sample: int,
        step: Step,
        collected: list[ToolResult],
    ) -> list[TranscriptRecord]:
        records = super()._step_records(conv, number, turn, sample, step, collected)
        if isinstance(step.outcome, BatchOutcome):
            for record in records:
                record.batch_id = step.outcome.batch_id
        return records


@dataclass
class _Pending:
    """A call waiting for its round."""

    custom_id: str
    request: Request
    cache_key: str | None
    future: asyncio.Future[CallOutcome]


class _Rounds:
    """Stands in for the ``Gateway`` of a batch job: each call waits for the round it goes
    out in, and a round goes out once every conversation still going waits for one."""

    def __init__(
        self, plan: JobPlan, gateway: Gateway, state: BatchState, base_url: str | None
    ) -> None:
        self.plan, self.gateway, self.state = plan, gateway, state
        self.retry: RetryPolicy = plan.run.retry
        self.endpoint = ENDPOINTS[plan.run.model.api]
        self.client: AsyncOpenAI = gateway.client_for(plan.run.model)
        self.active = 0  # conversations still going
        self.pending: list[_Pending] = []
        self.quiet = asyncio.Event()
        self.answered: list[BatchEntry] = []  # collected once their records are written
        self.round = max((b.round for b in state.batches), default=0)

    # ---------------------------------------------------------------- the calls' side

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
    ) -> CallOutcome:
        """Answer from the cache, or wait for this call's round (``Gateway.complete``'s
        signature; nothing streams)."""
        key = None
        if self.gateway.cache is not None and use_cache:
            key = self.gateway.cache_key_for(preset, request, sample)
            hit = await self.gateway._cache_get(key)
            if hit is not None:
                return CallOutcome(hit, None, 0, True, 0.0)
        turn = _TURN.get()
        step, turn.calls = turn.calls, turn.calls + 1
        rid = record_id(self.plan.config_hash, turn.conv, turn.number, 0, step, turn.sample)
        future: asyncio.Future[CallOutcome] = asyncio.get_running_loop().create_future()
        self.pending.append(_Pending(rid, request, key, future))
        self._check()
        return await future

    async def create_conversation(
        self, preset: ModelPreset, retry: RetryPolicy, timeout_s: float
    ) -> str | CallError:
        # never asked: validation refuses batch=true with server-side conversation state
        return CallError("ConfigError", "batch=true keeps no server-side conversation")

    def left(self) -> None:
        """A conversation is done."""
        self.active -= 1
        self._check()

    def _check(self) -> None:
        if self.active == 0 or len(self.pending) == self.active:
            self.quiet.set()

    # ---------------------------------------------------------------- the rounds' side

    async def drive(self) -> None:
        """Send a round each time every conversation still going waits for one."""
        self._check()  # a job whose every answer is on disk already has nothing to send
        while True:
            await self.quiet.wait()
            self.quiet.clear()
            self._collected()
            if self.active == 0:
                break
            pending, self.pending = self.pending, []
            await self._round(pending)
        # every record is written: a batch still named is one whose requests left the plan
        if self.state.waiting():
            for entry in self.state.waiting():
                entry.collected = True
            self.state.save()

    def _collected(self) -> None:
        """The last round's records are written (each conversation has moved on): its
        batches need no waiting for on resume."""
        if self.answered:
            for entry in self.answered:
                entry.collected = True
            self.answered = []
            self.state.save()

    async def _round(self, pending: list[_Pending]) -> None:
        self.round += 1
        by_id = {p.custom_id: p for p in pending}
        again = [b for b in self.state.waiting() if not by_id.keys().isdisjoint(b.record_ids)]
        covered = {rid for b in again for rid in b.record_ids}
        fresh = [p for p in pending if p.custom_id not in covered]
        for entry in again:
            log.info(
                "%s: waiting again for batch %s (round %d, %d requests)",
                self.plan.info.output_dir,
                entry.id,
                entry.round,
                len(entry.record_ids),
            )
        for part, lines in enumerate(self._parts(fresh), start=1):
            sent = await self._send(part, lines)
            if sent is not None:
                again.append(sent)
        async with asyncio.TaskGroup() as group:
            for entry in again:
                group.create_task(self._wait(entry, by_id))
        for p in pending:  # a request no batch answered
            if not p.future.done():
                error = CallError(
                    "BatchMissing",
                    "no batch answered this request: run the same command with resume=true to "
                    "send it again",
                )
                p.future.set_result(BatchOutcome(None, error, 1, False, None))

    def _parts(self, pending: list[_Pending]) -> Iterator[list[tuple[_Pending, bytes]]]:
        """The round's requests as input file lines, in files within the Batch API's limits."""
        part: list[tuple[_Pending, bytes]] = []
        size = 0
        for p in pending:
            body = {
                k: v for k, v in p.request.body.items() if k not in ("stream", "stream_options")
            }
            line = {"custom_id": p.custom_id, "method": "POST", "url": self.endpoint, "body": body}
            data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            if len(data) > MAX_BYTES:
                error = CallError(
                    "BatchTooLarge",
                    f"the request takes {len(data):,} bytes, more than a batch input file may "
                    f"({MAX_BYTES:,}): shorten it (token_budget, max_history) or set batch=false",
                )
                p.future.set_result(BatchOutcome(None, error, 0, False, None))
                continue
            if part and (len(part) >= MAX_REQUESTS or size + len(data) > MAX_BYTES):
                yield part
                part, size = [], 0
            part.append((p, data))
            size += len(data)
        if part:
            yield part

    async def _send(self, part: int, lines: list[tuple[_Pending, bytes]]) -> BatchEntry | None:
        """Write and upload one input file, create its batch and save it in the state file;
        None when it could not be sent (its requests are answered with the error)."""
        path = self.plan.info.output_dir / INPUT_DIR / f"round-{self.round}-part-{part}.jsonl"
        data = b"".join(line for _, line in lines)
        _write(path, data)
        try:
            uploaded = await self._api(
                lambda: self.client.files.create(
                    file=(path.name, data, "application/jsonl"), purpose="batch"
                )
            )
            batch = await self._api(
                lambda: self.client.batches.create(
                    input_file_id=uploaded.id,
                    endpoint=cast(Any, self.endpoint),
                    completion_window="24h",
                )
            )
        except Exception as exc:
            _log_unexpected(exc, f"sending {path.name}")
            error = classify(exc).error
            error.message = self.gateway._scrub(f"sending the batch: {error.message}")
            for p, _ in lines:
                p.future.set_result(_failed(error, None))
            return None
        entry = BatchEntry(
            batch.id, uploaded.id, self.round, self.endpoint, [p.custom_id for p, _ in lines]
        )
        self.state.batches.append(entry)
        self.state.save()
        log.info(
            "%s: round %d: batch %s sent with %d requests (%s); answers come within 24 h, and a "
            "run stopped meanwhile goes on waiting with resume=true",
            self.plan.info.output_dir,
            self.round,
            batch.id,
            len(lines),
            path.name,
        )
        return entry

    async def _wait(self, entry: BatchEntry, by_id: dict[str, _Pending]) -> None:
        """Poll a batch until it ends, then hand each of its requests its answer."""
        mine = [by_id[rid] for rid in entry.record_ids if rid in by_id]
        try:
            batch = await self._poll(entry)
            lines: dict[str, dict[str, Any]] = {}
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    lines |= await self._lines(file_id)
        except TranscriptWriteError:
            raise
        except Exception as exc:  # the batch cannot be seen (gone, or no access)
            _log_unexpected(exc, f"waiting for batch {entry.id}")
            error = classify(exc).error
            error.message = self.gateway._scrub(f"waiting for batch {entry.id}: {error.message}")
            for p in mine:
                if not p.future.done():
                    p.future.set_result(_failed(error, entry.id))
            self.answered.append(entry)
            return
        for p in mine:
            if p.future.done():
                continue
            line = lines.get(p.custom_id)
            outcome = self._outcome(line, entry.id) if line else _unanswered(batch)
            completion = outcome.completion
            if p.cache_key and completion is not None and completion.cacheable:
                await self.gateway._cache_put(p.cache_key, completion.to_cache())
            p.future.set_result(outcome)
        self.answered.append(entry)

    async def _poll(self, entry: BatchEntry) -> Batch:
        while True:
            batch = await self._patiently(lambda: self.client.batches.retrieve(entry.id))
            counts = batch.request_counts
            log.info(
                "%s: batch %s (round %d): %s, %d of %d requests answered, %d failed",
                self.plan.info.output_dir,
                batch.id,
                entry.round,
                batch.status,
                counts.completed if counts else 0,
                counts.total if counts else len(entry.record_ids),
                counts.failed if counts else 0,
            )
            if entry.status != batch.status:
                entry.status = batch.status
                self.state.save()
            if batch.status not in RUNNING:
                return batch
            await asyncio.sleep(self.plan.run.batch_poll_s)

    async def _lines(self, file_id: str) -> dict[str, dict[str, Any]]:
        """An output or error file's lines, by ``custom_id``."""
        content = await self._patiently(lambda: self.client.files.content(file_id))
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

    def _outcome(self, line: dict[str, Any], batch_id: str) -> BatchOutcome:
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
        error.message = self.gateway._scrub(error.message)
        return _failed(error, batch_id)

    def _answer(self, body: Any, batch_id: str) -> BatchOutcome:
        try:
            if self.endpoint != ENDPOINTS["responses"]:
                return BatchOutcome(
                    parse_chat_completion(body), None, 1, False, None, [], [], batch_id
                )
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
                return BatchOutcome(None, error, 1, False, None, [attempt], billed, batch_id)
            completion = _completion(response, None, None, None, usage)
            return BatchOutcome(completion, None, 1, False, None, [], [], batch_id)
        except MalformedChunkError as exc:
            return _failed(classify(exc).error, batch_id)

    # ---------------------------------------------------------------- the API

    async def _api(self, call: Callable[[], Awaitable[T]]) -> T:
        """One Batch API call, retried as calls are (``retry.*``)."""
        retry = self.retry
        retrying = AsyncRetrying(
            sleep=self.gateway.sleep,
            stop=stop_after_attempt(retry.max_attempts) | stop_after_delay(retry.max_wait_s),
            wait=lambda state: backoff_s(
                state.attempt_number, retry.initial_backoff_s, retry.max_backoff_s, None
            ),
            retry=retry_if_exception(lambda exc: classify(exc).retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        """A call made while waiting for a batch: a failure that may pass (a dropped
        connection, a 5xx) is tried again at the next poll, however long that takes."""
        while True:
            try:
                return await self._api(call)
            except Exception as exc:
                failure = classify(exc)
                if not failure.retryable:
                    raise
                log.warning(
                    "%s: the Batch API failed (%s: %s); trying again in %s s",
                    self.plan.info.output_dir,
                    failure.error.type,
                    self.gateway._scrub(failure.error.message),
                    self.plan.run.batch_poll_s,
                )
                await asyncio.sleep(self.plan.run.batch_poll_s)


def _write(path: Path, data: bytes) -> None:
    """Write a file whole and to the disk; a failure stops the job as a transcript's does."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise TranscriptWriteError(
            f"cannot write {path} ({exc.strerror or exc}): free some space (or fix the file "
            "system), then run the same command with resume=true; the records written so far "
            "are kept"
        ) from None


def _log_unexpected(exc: Exception, doing: str) -> None:
    """A failure that is not the API's (a bug) keeps its traceback in the log."""
    import openai

    if not isinstance(exc, openai.OpenAIError):
        log.exception("unexpected error %s", doing)


def _failed(error: CallError, batch_id: str | None) -> BatchOutcome:
    """A request that got no answer: one attempt, refused (nothing billed)."""
    attempt = AttemptError(1, error.type, error.status, False)
    return BatchOutcome(None, error, 1, False, None, [attempt], [], batch_id)


def _unanswered(batch: Batch) -> BatchOutcome:
    """A request a batch ended without answering: it failed, expired or was cancelled."""
    resume = "run the same command with resume=true to send it again"
    if batch.status == "failed":
        errors: Sequence[Any] = (batch.errors.data or []) if batch.errors else []
        why = "; ".join(f"{e.code or 'no code'}: {e.message or 'no message'}" for e in errors)
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
    return _failed(error, batch.id)
