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
import functools
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from runner.base.errors import ConfigError
from runner.base.record import CallError
from runner.base.schema import ModelPreset, RetryPolicy
from runner.core.job import (
    JobResult,
    JobRunner,
    RecordSink,
    TranscriptWriteError,
    open_writer,
    write_facts,
)
from runner.core.plan import JobPlan
from runner.core.questions import Conversation
from runner.core.recorder import Recorder
from runner.core.resume import ask_again, error_type, failed_call, resume_records
from runner.wire.batches import BatchClient, BatchStatus, unanswered, unsent
from runner.wire.gateway import CallOutcome, Gateway
from runner.wire.request import Request
from runner.wire.retry import classify

log = logging.getLogger(__name__)

# The Batch API's limits on one input file; lower them (tests) to see a round split.
MAX_REQUESTS = 50_000
MAX_BYTES = 200_000_000
STATE_NAME = "batch.json"
INPUT_DIR = "batch"  # the input files as uploaded, beside the transcript
# Requests a batch left unanswered as a whole: resume sends them again, in a new batch.
UNANSWERED = frozenset({"BatchFailed", "BatchExpired", "BatchCancelled", "BatchMissing"})

T = TypeVar("T")


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

    Called by ``runner.core.executor.execute_job`` (which holds the transcript's lock) for
    ``batch=true``. The conversations are asked by the same ``JobRunner`` as a streamed job's,
    given the rounds in place of the gateway. Records are on disk as each round's answers
    come back.
    """
    state = BatchState.load(plan.info.output_dir / STATE_NAME, base_url)
    done = resume_records(plan, base_url)
    if state.waiting() and not plan.run.resume:
        raise ConfigError(
            f"{state.path} names batches still out: pass resume=true to wait for them, or "
            "choose a new hydra.run.dir / hydra.sweep.dir"
        )
    done = _ask_unanswered_again(plan, done)
    write_facts(plan)  # once the transcript is this job's to write
    result = JobResult(failed_score=plan.run.failed_score)
    with open_writer(plan.transcript) as writer:
        rounds = Rounds(plan, gateway, state)
        runner = JobRunner(plan, rounds, writer, result, done, Recorder(plan, base_url), sink)
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
class _Pending:
    """A call waiting for its round."""

    custom_id: str
    request: Request
    cache_key: str | None
    future: asyncio.Future[CallOutcome]


class Rounds:
    """What carries a batch job's calls, in place of the ``Gateway``: each call waits for the
    round it goes out in, and a round goes out once every conversation still going waits for
    one. A call is named by its ``call_id`` (its record id), the ``custom_id`` of its line."""

    def __init__(self, plan: JobPlan, gateway: Gateway, state: BatchState) -> None:
        self.plan, self.gateway, self.state = plan, gateway, state
        self.api = BatchClient(
            gateway.client_for(plan.run.model),
            plan.run.model.api,
            plan.run.retry,
            gateway.sleep,
            gateway.scrub,
        )
        self.endpoint = self.api.endpoint
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
        call_id: str | None = None,
    ) -> CallOutcome:
        """Answer from the cache, or wait for this call's round (``Gateway.complete``'s
        signature; nothing streams)."""
        assert call_id is not None, "a batch names each call by its record id"
        key = None
        if self.gateway.cache is not None and use_cache:
            key = self.gateway.cache_key_for(preset, request, sample)
            hit = await self.gateway.cached(key)
            if hit is not None:
                return CallOutcome(hit, None, 0, True, 0.0)
        future: asyncio.Future[CallOutcome] = asyncio.get_running_loop().create_future()
        self.pending.append(_Pending(call_id, request, key, future))
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
                p.future.set_result(CallOutcome(None, error, 1, False, None))

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
                p.future.set_result(CallOutcome(None, error, 0, False, None))
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
            batch_id, file_id = await self.api.send(path.name, data)
        except Exception as exc:
            error = self.api.error(exc, "sending the batch", f"sending {path.name}")
            for p, _ in lines:
                p.future.set_result(unsent(error, None))
            return None
        entry = BatchEntry(
            batch_id, file_id, self.round, self.endpoint, [p.custom_id for p, _ in lines]
        )
        self.state.batches.append(entry)
        self.state.save()
        log.info(
            "%s: round %d: batch %s sent with %d requests (%s); answers come within 24 h, and a "
            "run stopped meanwhile goes on waiting with resume=true",
            self.plan.info.output_dir,
            self.round,
            batch_id,
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
                    lines |= await self._patiently(functools.partial(self.api.lines, file_id))
        except TranscriptWriteError:
            raise
        except Exception as exc:  # the batch cannot be seen (gone, or no access)
            error = self.api.error(exc, f"waiting for batch {entry.id}")
            for p in mine:
                if not p.future.done():
                    p.future.set_result(unsent(error, entry.id))
            self.answered.append(entry)
            return
        for p in mine:
            if p.future.done():
                continue
            line = lines.get(p.custom_id)
            outcome = self.api.outcome(line, entry.id) if line else unanswered(batch)
            if p.cache_key and outcome.completion is not None:
                await self.gateway.remember(p.cache_key, outcome.completion)
            p.future.set_result(outcome)
        self.answered.append(entry)

    async def _poll(self, entry: BatchEntry) -> BatchStatus:
        while True:
            batch = await self._patiently(lambda: self.api.status(entry.id))
            log.info(
                "%s: batch %s (round %d): %s, %d of %d requests answered, %d failed",
                self.plan.info.output_dir,
                batch.id,
                entry.round,
                batch.status,
                batch.completed,
                batch.total if batch.total is not None else len(entry.record_ids),
                batch.failed,
            )
            if entry.status != batch.status:
                entry.status = batch.status
                self.state.save()
            if not batch.running:
                return batch
            await asyncio.sleep(self.plan.run.batch_poll_s)

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        """A call made while waiting for a batch: a failure that may pass (a dropped
        connection, a 5xx) is tried again at the next poll, however long that takes."""
        while True:
            try:
                return await call()
            except Exception as exc:
                failure = classify(exc)
                if not failure.retryable:
                    raise
                log.warning(
                    "%s: the Batch API failed (%s: %s); trying again in %s s",
                    self.plan.info.output_dir,
                    failure.error.type,
                    self.gateway.scrub(failure.error.message),
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
