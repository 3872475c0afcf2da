"""One job: plan its conversations, ask them (turns in order, conversations concurrently), and
write a record the moment each call completes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from runner.config import RunConfig, sampling_params, token_budget
from runner.errors import BudgetError, ConfigError, QuestionsError
from runner.gateway import CallOutcome, Gateway, api_key_for
from runner.history import Exchange, build_prompt, exchange
from runner.questions import Conversation, Turn, load_conversations
from runner.record import CallError, TokenUsage, TranscriptRecord, cost_usd, estimated_usage
from runner.scoring import check_scorer, score_answer
from runner.tokens import TokenCounter, encoding_for, get_counter
from runner.transcript import TRANSCRIPT_NAME, TranscriptWriter, read_records, repair

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


class RecordSink(Protocol):
    """Told about every record as it is written (the progress display)."""

    def record_done(self, record: TranscriptRecord) -> None: ...


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

    @property
    def calls(self) -> int:
        return sum(len(c.turns) for c in self.conversations)

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
    scores: list[float] = field(default_factory=list)

    @property
    def mean_score(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None


def plan_job(run: RunConfig, info: JobInfo, check_credentials: bool = True) -> JobPlan:
    """Load the questions, check scorers, credentials and budgets; raises ``RunnerError``
    before any call (a dry run skips the credentials)."""
    conversations = load_conversations(run.questions)
    _check_scorers(run, conversations)
    if check_credentials:
        api_key_for(run.model)
    budget, reserved = token_budget(run)
    params = sampling_params(run)
    shaping = {
        "model": run.model.name,
        "base_url": run.model.base_url,
        "engine": run.model.engine,
        "system": run.system.message,
        "params": params,
        "questions": run.questions.name,
        "max_history": run.max_history,
        "budget": budget,
        "reserved": reserved,
    }
    config_hash = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()
    counter = get_counter(encoding_for(run.model.name, run.model.encoding))
    return JobPlan(run, info, conversations, params, counter, budget, reserved, config_hash)


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


def record_id(config_hash: str, conversation_id: str, turn: int) -> str:
    """The resume key: stable across re-runs of the same job config."""
    return hashlib.sha256(f"{config_hash}\0{conversation_id}\0{turn}".encode()).hexdigest()[:20]


async def execute_job(plan: JobPlan, gateway: Gateway, sink: RecordSink | None = None) -> JobResult:
    """Ask every conversation of a plan; returns the job's totals. Records are on disk as made."""
    path = plan.transcript
    done: dict[str, dict[str, Any]] = {}
    if path.exists() and path.stat().st_size:
        if not plan.run.resume:
            raise ConfigError(
                f"{path} already holds records: pass resume=true to finish that run, "
                "or choose a new hydra.run.dir / hydra.sweep.dir"
            )
        repair(path)
        done = {r["record_id"]: r for r in read_records(path)}
    result = JobResult()
    base_url = None
    if plan.run.model.engine != "echo":
        base_url = str(gateway.client_for(plan.run.model).base_url).rstrip("/")
    with TranscriptWriter(path) as writer:
        runner = _JobRunner(plan, gateway, writer, result, done, base_url, sink)
        # A fixed pool of workers takes conversations in turn: per-call state (prompts, retry
        # state, coroutine frames) exists only for what is about to be sent, not for every
        # call of a 20,000-call sweep at once.
        pending = iter(plan.conversations)

        async def worker() -> None:
            for conversation in pending:
                await runner.ask(conversation)

        workers = min(len(plan.conversations), 2 * gateway.concurrency)
        await asyncio.gather(*(worker() for _ in range(workers)))
    return result


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
    ) -> None:
        self.plan, self.gateway, self.writer, self.result = plan, gateway, writer, result
        self.done, self.base_url, self.sink = done, base_url, sink
        self.created = datetime.now(UTC)

    async def ask(self, conv: Conversation) -> None:
        run, plan = self.plan.run, self.plan
        history: list[Exchange] = []
        failed_turn: int | None = None
        for number, turn in enumerate(conv.turns, start=1):
            rid = record_id(plan.config_hash, conv.id, number)
            previous = self.done.get(rid)
            if previous is not None:  # resumed: reuse the answer, send nothing
                self._count(previous)
                if previous.get("answer") is None:
                    failed_turn = failed_turn or number
                else:
                    history.append(exchange(turn.question, previous["answer"]))
                continue
            if failed_turn is not None:
                self._write(self._record(rid, conv, number, turn, [], 0, None, skipped=failed_turn))
                continue
            try:
                prompt = build_prompt(
                    run.system.message,
                    history,
                    turn.question,
                    plan.counter,
                    plan.budget,
                    plan.reserved,
                    run.max_history,
                )
            except BudgetError as exc:
                error = CallError("BudgetError", str(exc))
                self._write(self._record(rid, conv, number, turn, [], 0, None, error=error))
                failed_turn = number
                continue
            outcome = await self.gateway.complete(
                run.model,
                prompt.messages,
                plan.params,
                prompt.prompt_tokens + plan.reserved,
                run.retry,
                run.timeout_s,
            )
            record = self._record(
                rid,
                conv,
                number,
                turn,
                prompt.messages,
                prompt.dropped_messages,
                prompt.prompt_tokens,
                outcome=outcome,
            )
            self._write(record)
            if record.answer is None:
                failed_turn = number
            else:
                history.append(exchange(turn.question, record.answer))

    def _record(
        self,
        rid: str,
        conv: Conversation,
        number: int,
        turn: Turn,
        messages: list[dict[str, str]],
        dropped: int,
        estimate: int | None,
        *,
        outcome: CallOutcome | None = None,
        error: CallError | None = None,
        skipped: int | None = None,
    ) -> TranscriptRecord:
        run, plan = self.plan.run, self.plan
        completion = outcome.completion if outcome else None
        if outcome is not None and outcome.error is not None:
            error = outcome.error
        if skipped is not None:
            error = CallError("Skipped", f"not asked: turn {skipped} of this conversation failed")
        usage = TokenUsage(source="none")
        if completion is not None:
            usage = completion.usage or estimated_usage(
                plan.counter.count_text, estimate, completion.answer
            )
        return TranscriptRecord(
            record_id=rid,
            job=plan.info.job,
            overrides=list(plan.info.overrides),
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            model=run.model.name,
            base_url=self.base_url,
            offline=run.model.engine == "echo",
            system=run.system.name,
            system_message=run.system.message,
            params=dict(plan.params),
            question_set=run.questions.name,
            conversation_id=conv.id,
            turn=number,
            question=turn.question,
            answer=completion.answer if completion else None,
            expected=turn.expected,
            messages=messages,
            dropped_messages=dropped,
            usage=usage,
            estimated_prompt_tokens=estimate,
            token_count_method=plan.counter.method,
            cost_usd=cost_usd(usage, run.model.prices) if completion else None,
            latency_s=_round(outcome.latency_s) if outcome else None,
            ttft_s=_round(completion.ttft_s) if completion else None,
            attempts=outcome.attempts if outcome else 0,
            cache_hit=outcome.cache_hit if outcome else False,
            finish_reason=completion.finish_reason if completion else None,
            response_id=completion.response_id if completion else None,
            served_model=completion.served_model if completion else None,
            system_fingerprint=completion.system_fingerprint if completion else None,
            error=error,
            score=score_answer(completion.answer, turn.expected, run.questions.scorer, turn.scorer)
            if completion
            else None,
        )

    def _write(self, record: TranscriptRecord) -> None:
        data = record.to_dict()
        self.writer.write(data)
        self._count(data)
        if self.sink is not None:
            self.sink.record_done(record)

    def _count(self, record: dict[str, Any]) -> None:
        self.result.calls += 1
        error = record.get("error")
        if error:
            self.result.errors += 1
            if error.get("type") == "Skipped":
                self.result.skipped += 1
        self.result.cost_usd += record.get("cost_usd") or 0.0
        if record.get("score") is not None:
            self.result.scores.append(record["score"])


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
