"""The records of one call: a ``TranscriptRecord`` per choice, with its share of the call's
usage and cost, its tool calls and results, its timing and provenance, and its score."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from runner.base.record import CallError, TokenUsage, TranscriptRecord
from runner.core.costs import Charge, call_cost, estimated_usage, split_usage
from runner.core.plan import JobPlan, record_id
from runner.core.questions import Conversation, Turn
from runner.core.scoring import score_answer
from runner.core.tools import ToolResult
from runner.core.turn import Step

log = logging.getLogger(__name__)


class Recorder:
    """Makes the records of a job's calls: ``base_url`` is where its calls go (None offline),
    and its calls cost ``plan.prices``."""

    def __init__(self, plan: JobPlan, base_url: str | None) -> None:
        self.plan, self.base_url = plan, base_url
        self.prices = plan.prices

    def ids(self, conv: Conversation, number: int, sample: int, step: int = 0) -> list[str]:
        """The record ids of one call: one per choice it asks for."""
        return [
            record_id(self.plan.config_hash, conv, number, choice, step, sample)
            for choice in range(self.plan.choices)
        ]

    def failed(
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
            self.record(
                rid, conv, number, turn, sample=sample, choice=i, step_number=step, error=error
            )
            for i, rid in enumerate(ids)
        ]

    def step_records(
        self,
        conv: Conversation,
        number: int,
        turn: Turn,
        sample: int,
        step: Step,
        collected: list[ToolResult],
        ids: list[str] | None = None,
    ) -> list[TranscriptRecord]:
        """The records of one call (``ids``: its record ids, by default ``self.ids(...)``):
        one per choice asked for, sharing the call's usage and cost."""
        ids = ids or self.ids(conv, number, sample, step.number)
        counter = self.plan.counter
        outcome = step.outcome
        final = outcome.completion is None or not step.calls or step.error is not None
        common: dict[str, Any] = {
            "step": step,
            "sample": sample,
            "turn_results": collected if final else None,
        }
        completion = outcome.completion

        def charge(spent: TokenUsage | None, index: int) -> Charge:
            # the first choice carries what the call's billed retries cost
            return call_cost(
                outcome,
                spent,
                self.prices,
                step.estimate,
                counter.count_text,
                with_retries=index == 0,
            )

        if completion is None:  # every choice failed with the call; the cost goes on the first
            charges = [charge(None, index) for index in range(len(ids))]
            return [
                self.record(
                    rid,
                    conv,
                    number,
                    turn,
                    **common,
                    choice=index,
                    cost=charges[index].cost_usd,
                    retried=charges[index].retried,
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
                    self.record(rid, conv, number, turn, **common, choice=index, error=error)
                )
                continue
            share = shares[index]
            cost = charge(share, index)
            records.append(
                self.record(
                    rid,
                    conv,
                    number,
                    turn,
                    **common,
                    choice=index,
                    usage=share,
                    cost=cost.cost_usd,
                    cached_cost=cost.cached_cost_usd,
                    retried=cost.retried,
                    error=step.error if index == 0 else None,
                )
            )
        return records

    def record(
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
        """One choice's record of a call (``step``), or of a call that was not made
        (``error``), scored when it ends its turn (``turn_results``: the turn's tool calls)."""
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
            batch_id=outcome.batch_id if outcome else None,
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
