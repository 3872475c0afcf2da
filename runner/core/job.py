"""One job: plan its conversations, ask them (turns in order, conversations concurrently), and
write the records of each call the moment it completes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from runner.analysis.stats import Answer, final_records, mean_score
from runner.base.errors import ConfigError, QuestionsError, RunnerError
from runner.base.record import (
    CallError,
    TokenUsage,
    TranscriptRecord,
    cost_usd,
    estimated_usage,
    split_usage,
)
from runner.base.transcript import TRANSCRIPT_NAME, TranscriptWriter, read_records, repair
from runner.core.config import RunConfig, token_budget
from runner.core.history import Exchange, exchange
from runner.core.judge import JobJudge, JudgePlan, judge_for_job, plan_job_judge
from runner.core.lock import lock_transcript
from runner.core.questions import Conversation, Turn, load_conversations
from runner.core.scoring import check_scorer, score_answer
from runner.core.tools import Toolbox, ToolResult
from runner.core.turn import ConversationState, Step, TurnResult, TurnRunner, shape_for
from runner.wire.gateway import Gateway, api_key_for, charged_usage
from runner.wire.request import Shape
from runner.wire.tokens import TokenCounter, encoding_for, get_counter

log = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
SUPERSEDED_NAME = "superseded.jsonl"
FAILED_AGAIN = "of failed calls (and the turns skipped after them), asked again"


class RecordSink(Protocol):
    """Told about every call as its records are written (the progress display)."""

    def call_done(self, records: Sequence[dict[str, Any]]) -> None: ...


class TranscriptWriteError(RunnerError):
    """A transcript cannot be written (a full disk): the job stops, its records so far stay."""


@dataclass
class JobInfo:
    """Where a job writes and how Hydra named it."""

    output_dir: Path
    job: int | None = None
    overrides: list[str] = field(default_factory=list)


@dataclass
class JobPlan:
    """Everything a job needs, checked before any call is made."""

    run: RunConfig
    info: JobInfo
    conversations: list[Conversation]
    params: dict[str, Any]
    counter: TokenCounter
    budget: int
    reserved: int
    config_hash: str
    shape: Shape
    toolbox: Toolbox
    schema: dict[str, Any] | None = None
    judge: JudgePlan | None = None  # the judge of the turns scored by it, if any

    @property
    def steps(self) -> int:
        """Calls a turn may take: one, and one more for each round of tool calls."""
        return 1 + self.run.tools.max_rounds if self.toolbox else 1

    @property
    def calls(self) -> int:
        """API calls the job makes (each gives ``choices`` records), tool rounds aside."""
        return self.run.repeat * sum(len(c.turns) for c in self.conversations)

    @property
    def choices(self) -> int:
        """Answers each call asks for (the sampling param ``n``)."""
        return int(self.params.get("n") or 1)

    @property
    def transcript(self) -> Path:
        return self.info.output_dir / TRANSCRIPT_NAME


@dataclass
class JobResult:
    """Totals of one finished job."""

    calls: int = 0
    errors: int = 0
    skipped: int = 0
    cost_usd: float = 0.0
    scores: list[float] = field(default_factory=list)  # the final answers' own scores
    answers: list[Answer] = field(default_factory=list)  # the final answers, for mean_score
    failed_score: float | None = 0.0  # the config's: what a failed answer scores
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _judged: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def mean_score(self) -> float | None:
        """The summary's mean score: final answers, failed ones scoring ``failed_score``."""
        return mean_score(self.answers, self.failed_score)

    def add_answer(self, record: dict[str, Any]) -> None:
        """A final answer's record (a judge's score for it may have come first)."""
        answer = Answer.of(record, keep_text=False)
        rid = str(record.get("record_id"))
        if answer.score is None and rid in self._judged:
            answer = dataclasses.replace(answer, score=self._judged[rid])
        self._index[rid] = len(self.answers)
        self.answers.append(answer)
        if record.get("score") is not None:
            self.scores.append(record["score"])

    def judged(self, record_id: str, score: float) -> None:
        """A judge scored an answer: the score counts where the answer has none of its own."""
        self._judged[record_id] = score
        self.scores.append(score)
        index = self._index.get(record_id)
        if index is not None and self.answers[index].score is None:
            self.answers[index] = dataclasses.replace(self.answers[index], score=score)


def plan_job(run: RunConfig, info: JobInfo, check_credentials: bool = True) -> JobPlan:
    """Load the questions, tools and schema, check scorers, credentials and budgets; raises
    ``RunnerError`` before any call (a dry run skips the credentials)."""
    conversations = load_conversations(run.questions)
    _check_scorers(run, conversations)
    judge = plan_job_judge(run, conversations, check_credentials)
    if check_credentials:
        api_key_for(run.model)
    budget, reserved = token_budget(run)
    shape, toolbox, schema = shape_for(run)
    params = shape.params
    # What shapes the answers, and so the records' identity. The endpoint is not in it: the
    # same model behind another base URL is checked on resume instead (``_check_resumable``).
    shaping: dict[str, Any] = {
        "model": run.model.name,
        "engine": run.model.engine,
        "system": run.system.message,
        "params": params,
        "questions": run.questions.name,
        "max_history": run.max_history,
        "budget": budget,
        "reserved": reserved,
    }
    if run.model.api != "chat" or toolbox or shape.text_format or shape.store:
        shaping |= {
            "api": run.model.api,
            "tools": shape.tools,
            "tool_choice": shape.tool_choice,
            "format": shape.text_format,
            "state": run.conversation_state,
            "max_rounds": run.tools.max_rounds,
        }
    config_hash = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()
    counter = get_counter(encoding_for(run.model.name, run.model.encoding))
    return JobPlan(
        run,
        info,
        conversations,
        params,
        counter,
        budget,
        reserved,
        config_hash,
        shape,
        toolbox,
        schema,
        judge,
    )


def _check_scorers(run: RunConfig, conversations: list[Conversation]) -> None:
    problem = check_scorer(run.questions.scorer.kind, None, "questions.scorer.kind")
    for conv in conversations:
        for number, turn in enumerate(conv.turns, start=1):
            where = f"question set {run.questions.name!r}, {conv.id!r} turn {number}"
            problem = problem or check_scorer(
                turn.scorer or run.questions.scorer.kind, turn.expected, where
            )
    if problem:
        raise QuestionsError(problem + "; fix the question set or its scorer")


def record_id(
    config_hash: str,
    conversation: Conversation,
    turn: int,
    choice: int = 0,
    step: int = 0,
    sample: int = 0,
) -> str:
    """The resume key of one answer: the job's config, the conversation's id, and the text and
    expected answer of this turn and every turn before it (so an edited or inserted item is
    asked again, and an answer is never paired with another question), the choice, the call
    within the turn (tool rounds) and the sample (repeats)."""
    asked = [[t.question, t.expected] for t in conversation.turns[:turn]]
    key: list[Any] = [config_hash, conversation.id, asked, choice]
    if step or sample:
        key.append(step)
    if sample:
        key.append(sample)
    blob = json.dumps(key, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


async def execute_job(plan: JobPlan, gateway: Gateway, sink: RecordSink | None = None) -> JobResult:
    """Ask every conversation of a plan; returns the job's totals. Records are on disk as made.

    An unexpected exception in one conversation becomes its error record and the others go
    on; only a transcript that cannot be written stops the job (``TranscriptWriteError``).
    """
    path = plan.transcript
    base_url = None
    if plan.run.model.engine != "echo":
        base_url = gateway.endpoint_for(plan.run.model)
    with lock_transcript(path):
        if plan.run.batch:
            from runner.core.batch import execute_batch  # imports this module

            return await execute_batch(plan, gateway, sink, base_url)
        return await _execute(plan, gateway, sink, base_url)


async def _execute(
    plan: JobPlan, gateway: Gateway, sink: RecordSink | None, base_url: str | None
) -> JobResult:
    done = _resume(plan, base_url)
    if plan.run.resume_failed:
        done = ask_again(plan, done, failed_call, FAILED_AGAIN)
    result = JobResult(failed_score=plan.run.failed_score)
    judge = judge_for_job(
        plan.judge,
        plan.run,
        plan.conversations,
        gateway,
        plan.info.output_dir,
        result.judged,
    )
    # the judge's calls still out when the answers are done are waited for (cancelled on error)
    async with judge or contextlib.nullcontext():
        if judge is not None:  # answers a killed run wrote before their judge was asked
            judge.submit(done.values())
        await _ask_all(plan, gateway, sink, base_url, done, result, judge)
    return result


async def _ask_all(
    plan: JobPlan,
    gateway: Gateway,
    sink: RecordSink | None,
    base_url: str | None,
    done: dict[str, dict[str, Any]],
    result: JobResult,
    judge: JobJudge | None,
) -> None:
    path = plan.transcript
    with _open_writer(path) as writer:
        runner = _JobRunner(plan, gateway, writer, result, done, base_url, sink, judge)
        # A fixed pool of workers takes conversations in turn: per-call state (prompts, retry
        # state, coroutine frames) exists only for what is about to be sent, not for every
        # call of a 20,000-call sweep at once.
        pending = ((c, s) for s in range(plan.run.repeat) for c in plan.conversations)

        async def worker() -> None:
            for conversation, sample in pending:
                await runner.ask(conversation, sample)

        workers = min(len(plan.conversations) * plan.run.repeat, 2 * gateway.concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        except* TranscriptWriteError as failed:
            raise failed.exceptions[0] from None


def _open_writer(path: Path) -> TranscriptWriter:
    try:
        return TranscriptWriter(path)
    except OSError as exc:
        raise TranscriptWriteError(
            f"cannot open {path} for writing ({exc.strerror or exc}): choose another "
            "hydra.run.dir / hydra.sweep.dir"
        ) from None


def _resume(plan: JobPlan, base_url: str | None) -> dict[str, dict[str, Any]]:
    """The records a killed run already wrote, by ``record_id``; ``{}`` for a new job.

    Refuses (``ConfigError``) to append to a transcript without ``resume=true``, or one
    written by another config or against another base URL. Records of items no longer in
    the question set, or changed since, move to ``superseded.jsonl`` beside it, so that the
    transcript holds this experiment's records only.
    """
    path = plan.transcript
    if not (path.exists() and path.stat().st_size):
        return {}
    if not plan.run.resume:
        raise ConfigError(
            f"{path} already holds records: pass resume=true to finish that run, "
            "or choose a new hydra.run.dir / hydra.sweep.dir"
        )
    repair(path)
    try:
        records = list(read_records(path))
    except ValueError as exc:
        raise ConfigError(
            f"{exc}: resume cannot trust this transcript; fix or remove that line, or choose "
            "a new hydra.run.dir / hydra.sweep.dir"
        ) from None
    _check_resumable(plan, records, base_url)
    wanted = {
        record_id(plan.config_hash, conv, number, choice, step, sample)
        for conv in plan.conversations
        for number in range(1, len(conv.turns) + 1)
        for choice in range(plan.choices)
        for step in range(plan.steps)
        for sample in range(plan.run.repeat)
    }
    done: dict[str, dict[str, Any]] = {}
    stale: list[dict[str, Any]] = []
    for record in records:
        rid = record.get("record_id")
        if rid in wanted and rid not in done:
            done[rid] = record
        else:
            stale.append(record)
    if stale:
        _set_aside(path, list(done.values()), stale)
    return done


# Errors that are the model's own answer (a refusal, a content filter's stop): asking again
# would draw another sample, not repair a failure, so ``resume_failed`` keeps them.
MODEL_ANSWERS = frozenset({"Refusal", "ContentFilter"})


def error_type(record: dict[str, Any]) -> str | None:
    return (record.get("error") or {}).get("type")


def failed_call(record: dict[str, Any]) -> bool:
    """A record of a call that failed (a server error, a timeout, a dropped stream, ...): not
    an answer, nor a turn skipped after a failure."""
    kind = error_type(record)
    return kind is not None and kind not in MODEL_ANSWERS and kind != "Skipped"


def ask_again(
    plan: JobPlan,
    done: dict[str, dict[str, Any]],
    picked: Callable[[dict[str, Any]], bool],
    why: str,
) -> dict[str, dict[str, Any]]:
    """Set aside the turns to ask again; returns the records kept.

    In each conversation (and sample), from the first turn with a record ``picked`` selects,
    every record of that turn (each step of its tool loop, each choice) and of the turns after
    it moves to ``superseded.jsonl``: the turn is asked whole, so no record is written twice.
    """

    def asked(record: dict[str, Any]) -> tuple[str, int]:
        return record["conversation_id"], record.get("sample") or 0

    first: dict[tuple[str, int], int] = {}
    for record in done.values():
        if picked(record):
            key = asked(record)
            first[key] = min(first.get(key, record["turn"]), record["turn"])
    if not first:
        return done
    stale = {
        rid
        for rid, record in done.items()
        if asked(record) in first and record["turn"] >= first[asked(record)]
    }
    keep = {rid: r for rid, r in done.items() if rid not in stale}
    aside = [r for rid, r in done.items() if rid in stale]  # in the transcript's order
    _set_aside(plan.transcript, list(keep.values()), aside, why)
    return keep


def _check_resumable(plan: JobPlan, records: list[dict[str, Any]], base_url: str | None) -> None:
    """Refuse to resume into a transcript another config (or another endpoint) wrote."""
    for number, record in enumerate(records, start=1):
        if record.get("base_url") != base_url:
            raise ConfigError(
                f"{plan.transcript} was written against base_url {record.get('base_url')}, and "
                f"this run sends to {base_url}: resume with the same model.base_url (and "
                "OPENAI_BASE_URL), or choose a new hydra.run.dir / hydra.sweep.dir"
            )
        theirs = record.get("config_hash")
        if theirs != plan.config_hash:
            differs = _first_difference(plan, record)
            raise ConfigError(
                f"{plan.transcript} (record {number}) was written by another config ({differs}): "
                "resume with the settings it was run with, or choose a new hydra.run.dir / "
                "hydra.sweep.dir"
            )


def _first_difference(plan: JobPlan, record: dict[str, Any]) -> str:
    run = plan.run
    ours = {
        "model": run.model.name,
        "system_message": run.system.message,
        "params": plan.params,
        "question_set": run.questions.name,
    }
    for key, value in ours.items():
        if record.get(key) != value:
            return f"{key} was {record.get(key)!r}, now {value!r}"
    return "max_history, token_budget or the model's limits differ"


def _set_aside(
    path: Path,
    keep: list[dict[str, Any]],
    stale: list[dict[str, Any]],
    why: str = "of items no longer in the question set (or changed)",
) -> None:
    """Move ``stale`` records to ``superseded.jsonl`` and rewrite the transcript with ``keep``.

    The stale records are appended to the side file first, then the transcript is replaced
    in one rename: a crash at any point loses no record (at worst one is in both files).
    """
    aside = path.with_name(SUPERSEDED_NAME)
    with TranscriptWriter(aside) as writer:
        for record in stale:
            writer.write(record)
    fresh = path.with_name(path.name + ".rewrite")
    fresh.unlink(missing_ok=True)
    with TranscriptWriter(fresh) as writer:
        for record in keep:
            writer.write(record)
    fresh.replace(path)
    log.info("%s: %d record(s) %s moved to %s", path, len(stale), why, aside.name)


class _JobRunner:
    def __init__(
        self,
        plan: JobPlan,
        gateway: Gateway,
        writer: TranscriptWriter,
        result: JobResult,
        done: dict[str, dict[str, Any]],
        base_url: str | None,
        sink: RecordSink | None,
        judge: JobJudge | None = None,
    ) -> None:
        self.plan, self.gateway, self.writer, self.result = plan, gateway, writer, result
        self.done, self.base_url, self.sink, self.judge = done, base_url, sink, judge
        self.written: set[str] = set()
        self.prices = plan.run.model.prices  # what a call costs (the Batch API's are lower)
        self.turns = TurnRunner(
            gateway,
            plan.run,
            plan.shape,
            plan.toolbox,
            plan.counter,
            plan.budget,
            plan.reserved,
        )

    def _ids(self, conv: Conversation, number: int, sample: int, step: int = 0) -> list[str]:
        return [
            record_id(self.plan.config_hash, conv, number, choice, step, sample)
            for choice in range(self.plan.choices)
        ]

    async def ask(self, conv: Conversation, sample: int = 0) -> None:
        """Ask a conversation's turns in order; a failed turn skips the ones after it.

        An unexpected exception (a bug, in a scorer say) ends this conversation with an error
        record; whatever was already written stays, and other conversations go on.
        """
        history: list[Exchange] = []
        failed_turn: int | None = None
        state = ConversationState(self.plan.run.conversation_state)
        for number, turn in enumerate(conv.turns, start=1):
            resumed = self._resumed(conv, number, sample)
            if resumed is not None:  # resumed: reuse the answers, send nothing
                self._count(resumed)
                self._tell(resumed)
                final = resumed[-self.plan.choices]
                kept = final.get("state") or {}
                state.conversation = state.conversation or kept.get("conversation")
                if state.mode == "previous_response_id" and final.get("response_id"):
                    state.previous_response_id = final["response_id"]
                if final.get("error") is not None or final.get("answer") is None:
                    failed_turn = failed_turn or number
                else:
                    history.append(exchange(turn.question, final["answer"]))
                continue
            if failed_turn is not None:
                skipped = CallError(
                    "Skipped", f"not asked: turn {failed_turn} of this conversation failed"
                )
                ids = self._ids(conv, number, sample)
                self._write(self._failed(ids, conv, number, turn, sample, skipped))
                continue
            steps_written: list[int] = []
            try:
                final_record = await self._ask_turn(
                    conv, number, turn, sample, history, state, steps_written
                )
            except (TranscriptWriteError, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.exception("unexpected error in conversation %r, turn %d", conv.id, number)
                error = CallError("InternalError", f"{type(exc).__name__}: {exc}"[:500])
                step = steps_written[-1] + 1 if steps_written else 0
                ids = self._ids(conv, number, sample, step)
                unwritten = [rid for rid in ids if rid not in self.written]
                if unwritten:
                    self._write(self._failed(unwritten, conv, number, turn, sample, error, step))
                failed_turn = number
                continue
            if final_record.error is not None or final_record.answer is None:
                failed_turn = number
            else:
                history.append(exchange(turn.question, final_record.answer))

    def _resumed(self, conv: Conversation, number: int, sample: int) -> list[dict[str, Any]] | None:
        """The records a killed run wrote for a whole turn (every step, every choice), or None
        when the turn did not finish (it is asked again)."""
        records: list[dict[str, Any]] = []
        for step in range(self.plan.steps):
            found = [self.done.get(rid) for rid in self._ids(conv, number, sample, step)]
            if any(r is None for r in found):
                return None
            kept = [r for r in found if r is not None]
            records += kept
            if kept[0].get("error") is not None or not kept[0].get("tool_calls"):
                return records
        return None

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
        """Ask one turn (every call of its tool loop) and write each call's records as it
        completes; returns the first choice's record of the last call."""
        collected: list[ToolResult] = []
        last: list[TranscriptRecord] = []

        def on_step(step: Step) -> None:
            collected.extend(step.tool_results)
            records = self._step_records(conv, number, turn, sample, step, collected)
            self._write(records)
            steps_written.append(step.number)
            last[:] = records[:1]

        result: TurnResult = await self.turns.ask(
            history, turn.question, state, on_step, sample=sample
        )
        if result.error is not None:
            step = steps_written[-1] + 1 if steps_written else 0
            ids = self._ids(conv, number, sample, step)
            records = self._failed(ids, conv, number, turn, sample, result.error, step)
            self._write(records)
            return records[0]
        return last[0]

    def _failed(
        self,
        ids: list[str],
        conv: Conversation,
        number: int,
        turn: Turn,
        sample: int,
        error: CallError,
        step: int = 0,
    ) -> list[TranscriptRecord]:
        """Error records of a call that was not made: one per choice it would have given."""
        return [
            self._record(
                rid, conv, number, turn, sample=sample, choice=i, step_number=step, error=error
            )
            for i, rid in enumerate(ids)
        ]

    def _step_records(
        self,
        conv: Conversation,
        number: int,
        turn: Turn,
        sample: int,
        step: Step,
        collected: list[ToolResult],
    ) -> list[TranscriptRecord]:
        """The records of one call: one per choice asked for, sharing the call's usage."""
        ids = self._ids(conv, number, sample, step.number)
        prices = self.prices
        counter = self.plan.counter
        outcome = step.outcome
        retried = charged_usage(outcome, step.estimate, counter.count_text)
        retry_cost = cost_usd(retried, prices) if retried is not None else 0.0
        final = outcome.completion is None or not step.calls or step.error is not None
        common: dict[str, Any] = {
            "step": step,
            "sample": sample,
            "turn_results": collected if final else None,
        }
        completion = outcome.completion
        if completion is None:  # every choice failed with the call; the cost goes on the first
            unknown = any(a.charged is None for a in outcome.attempt_errors)
            cost = retry_cost if retried is not None else (None if unknown else 0.0)
            return [
                self._record(
                    rid,
                    conv,
                    number,
                    turn,
                    **common,
                    choice=index,
                    cost=cost if index == 0 else 0.0,
                    retried=retried if index == 0 else None,
                )
                for index, rid in enumerate(ids)
            ]
        usage = completion.usage or estimated_usage(
            counter.count_text, step.estimate, "".join(c.text for c in completion.choices)
        )
        weights = [counter.count_text(c.text + (c.refusal or "")) for c in completion.choices]
        shares = split_usage(usage, weights)
        records = []
        for index, rid in enumerate(ids):
            choice = completion.choices[index] if index < len(completion.choices) else None
            if choice is None or choice.index != index:
                error = CallError(
                    "MissingChoice",
                    f"asked for n={len(ids)} answers, the server sent {len(completion.choices)}: "
                    "it may not support n; set sampling.n=null",
                )
                records.append(
                    self._record(rid, conv, number, turn, **common, choice=index, error=error)
                )
                continue
            share = shares[index]
            cost = cost_usd(share, prices)
            if index == 0 and cost is not None and retry_cost is not None:
                cost += retry_cost
            cached_cost = None
            if outcome.cache_hit:
                cached_cost, cost = cost, 0.0
            records.append(
                self._record(
                    rid,
                    conv,
                    number,
                    turn,
                    **common,
                    choice=index,
                    usage=share,
                    cost=cost,
                    cached_cost=cached_cost,
                    retried=retried if index == 0 else None,
                    error=step.error if index == 0 else None,
                )
            )
        return records

    def _record(
        self,
        rid: str,
        conv: Conversation,
        number: int,
        turn: Turn,
        *,
        step: Step | None = None,
        step_number: int = 0,
        sample: int = 0,
        turn_results: list[ToolResult] | None = None,
        choice: int = 0,
        usage: TokenUsage | None = None,
        cost: float | None = None,
        cached_cost: float | None = None,
        retried: TokenUsage | None = None,
        error: CallError | None = None,
    ) -> TranscriptRecord:
        run, plan = self.plan.run, self.plan
        outcome = step.outcome if step is not None else None
        completion = outcome.completion if outcome else None
        picked = None
        if completion is not None and choice < len(completion.choices):
            picked = completion.choices[choice]
            if picked.index != choice:
                picked = None
        if outcome is not None and outcome.error is not None:
            error = outcome.error
        if picked is not None and error is None:
            error = picked.error()
        answer = picked.text if picked is not None and picked.refusal is None else None
        calls = picked.tool_calls if picked is not None else []
        record = TranscriptRecord(
            record_id=rid,
            config_hash=plan.config_hash,
            job=plan.info.job,
            overrides=list(plan.info.overrides),
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            model=run.model.name,
            base_url=self.base_url,
            offline=run.model.engine == "echo",
            api=run.model.api,
            system=run.system.name,
            system_message=run.system.message,
            params=dict(plan.params),
            tools=run.tools.name,
            question_set=run.questions.name,
            conversation_id=conv.id,
            turn=number,
            step=step.number if step is not None else step_number,
            sample=sample,
            choice=choice,
            question=turn.question,
            answer=answer,
            refusal=picked.refusal if picked is not None else None,
            expected=turn.expected,
            messages=step.messages if step is not None else [],
            dropped_messages=step.dropped if step is not None else 0,
            tool_calls=[ToolResult(c, "").to_dict() | {"output": None} for c in calls],
            tool_results=[r.to_dict() for r in step.tool_results] if step is not None else [],
            output_items=_output_items(completion.output) if completion is not None else [],
            state=step.state.to_dict()
            if step is not None and step.state.mode != "client"
            else None,
            usage=usage or TokenUsage(source="none"),
            estimated_prompt_tokens=step.estimate if step is not None else None,
            token_count_method=plan.counter.method,
            cost_usd=cost,
            cached_cost_usd=cached_cost,
            retried_usage=retried,
            latency_s=_round(outcome.latency_s) if outcome else None,
            ttft_s=_round(completion.ttft_s) if completion else None,
            attempts=outcome.attempts if outcome else 0,
            cache_hit=outcome.cache_hit if outcome else False,
            finish_reason=picked.finish_reason if picked is not None else None,
            response_id=completion.response_id if completion else None,
            served_model=completion.served_model if completion else None,
            system_fingerprint=completion.system_fingerprint if completion else None,
            attempt_errors=list(outcome.attempt_errors) if outcome else [],
            error=error,
        )
        kind = turn.scorer or run.questions.scorer.kind
        # a tool_call scorer scores the calls, which a turn that failed afterwards still made
        scored = answer is not None and error is None
        if turn_results is not None and (scored or kind == "tool_call"):
            try:
                record.score = score_answer(
                    answer,
                    turn.expected,
                    run.questions.scorer,
                    turn.scorer,
                    tool_calls=turn_results,
                    schema=plan.schema,
                )
            except Exception as exc:  # a scorer bug must not lose a call already paid for
                log.exception("scorer failed on conversation %r, turn %d", conv.id, number)
                record.error = CallError("ScorerError", f"{type(exc).__name__}: {exc}"[:500])
        return record

    def _write(self, records: list[TranscriptRecord]) -> None:
        # a resumed call whose records were only partly written keeps the ones on disk
        data = [r.to_dict() for r in records if r.record_id not in self.done]
        try:
            self.writer.write_many(data)
        except OSError as exc:
            raise TranscriptWriteError(
                f"cannot write {self.writer.path} ({exc.strerror or exc}): free some space (or "
                "fix the file system), then run the same command with resume=true; the records "
                "written so far are kept"
            ) from None
        self.written.update(item["record_id"] for item in data)
        self._count(data)
        self._tell(data)
        if self.judge is not None:  # the answers it scores, once they are on disk
            self.judge.submit(data)

    def _tell(self, records: Sequence[dict[str, Any]]) -> None:
        if self.sink is None:
            return
        try:
            self.sink.call_done(records)
        except Exception:  # the display must never stop the calls
            log.exception("the progress display failed")
            self.sink = None

    def _count(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            self.result.calls += 1
            error = record.get("error")
            if error:
                self.result.errors += 1
                if error.get("type") == "Skipped":
                    self.result.skipped += 1
            self.result.cost_usd += record.get("cost_usd") or 0.0
        # the records of whole calls: a tool loop's intermediate calls hold no answer
        for record in final_records(records):
            self.result.add_answer(record)


def _output_items(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a Responses answer holds beyond its text: built-in tool calls with their results,
    and messages that carry citations (plain text messages and function calls are recorded
    as ``answer`` and ``tool_calls``)."""
    kept = []
    for item in output:
        kind = item.get("type")
        if kind == "function_call":
            continue
        if kind == "message":
            parts = item.get("content") or []
            if not any(isinstance(p, dict) and p.get("annotations") for p in parts):
                continue
        kept.append(item)
    return kept


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
