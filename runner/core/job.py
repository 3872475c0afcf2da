"""Asking a job's conversations: turns in order (a failed turn skips the ones after it), every
call's records written the moment it completes, and the job's totals as they grow.

A ``JobRunner`` is given what carries its calls (the ``Gateway``, or a batch job's rounds) and
what it writes to; ``runner.core.executor`` sets both up and runs the job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runner.analysis.stats import Answer, mean_score
from runner.analysis.totals import Totals
from runner.base.errors import RunnerError
from runner.base.jobfile import JobFacts, write_job_facts
from runner.base.record import CallError, TranscriptRecord
from runner.base.transcript import TranscriptWriter
from runner.core.history import Exchange, exchange
from runner.core.judge import JobJudge
from runner.core.plan import JobPlan
from runner.core.questions import Conversation, Turn
from runner.core.recorder import Recorder
from runner.core.tools import ToolResult
from runner.core.turn import ConversationState, Step, Transport, TurnResult, TurnRunner

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    """Told about every call as its records are written (the progress display)."""

    def call_done(self, records: Sequence[dict[str, Any]]) -> None: ...


class TranscriptWriteError(RunnerError):
    """A transcript cannot be written (a full disk): the job stops, its records so far stay."""


@dataclass
class JobResult(Totals):
    """Totals of one job (``Totals``), its mean score with failed answers scoring
    ``failed_score``, and the scores of its final answers (a judge's among them)."""

    failed_score: float | None = 0.0  # the config's: what a failed answer scores
    scores: list[float] = field(default_factory=list)  # the final answers' own scores
    keep_text: bool = field(default=False, repr=False)  # a job keeps answers small
    keep_latencies: bool = field(default=False, repr=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _judged: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def mean_score(self) -> float | None:
        """The summary's mean score: final answers, failed ones scoring ``failed_score``."""
        return mean_score(self.answers, self.failed_score)

    def _answer(self, record: dict[str, Any]) -> Answer:
        """A final answer's record (a judge's score for it may have come first)."""
        answer = super()._answer(record)
        rid = str(record.get("record_id"))
        if answer.score is None and rid in self._judged:
            answer = dataclasses.replace(answer, score=self._judged[rid])
        self._index[rid] = len(self.answers)
        if record.get("score") is not None:
            self.scores.append(record["score"])
        return answer

    def judged(self, record_id: str, score: float) -> None:
        """A judge scored an answer: the score counts where the answer has none of its own."""
        self._judged[record_id] = score
        self.scores.append(score)
        index = self._index.get(record_id)
        if index is not None and self.answers[index].score is None:
            self.answers[index] = dataclasses.replace(self.answers[index], score=score)


def write_facts(plan: JobPlan) -> None:
    """Write the job's ``job.json`` (what it asks, and what a failed answer scores);
    ``TranscriptWriteError`` when it cannot be written."""
    facts = JobFacts(
        job=plan.info.job,
        overrides=list(plan.info.overrides),
        failed_score=plan.run.failed_score,
        question_set=plan.run.questions.name,
        conversations=[c.id for c in plan.conversations],
    )
    try:
        write_job_facts(plan.info.output_dir, facts)
    except OSError as exc:
        raise TranscriptWriteError(
            f"cannot write into {plan.info.output_dir} ({exc.strerror or exc}): free some space "
            "or choose another hydra.run.dir / hydra.sweep.dir"
        ) from None


def open_writer(path: Path) -> TranscriptWriter:
    """The job's transcript, opened to append; ``TranscriptWriteError`` when it cannot be."""
    try:
        return TranscriptWriter(path)
    except OSError as exc:
        raise TranscriptWriteError(
            f"cannot open {path} for writing ({exc.strerror or exc}): choose another "
            "hydra.run.dir / hydra.sweep.dir"
        ) from None


class JobRunner:
    """Asks the conversations of one job through ``transport`` and writes their records.

    ``done`` holds the records a killed run wrote (by record id): their turns are not asked
    again. ``sink`` (progress) and ``judge`` are told about every record written.
    """

    def __init__(
        self,
        plan: JobPlan,
        transport: Transport,
        writer: TranscriptWriter,
        result: JobResult,
        done: dict[str, dict[str, Any]],
        recorder: Recorder,
        sink: RecordSink | None,
        judge: JobJudge | None = None,
    ) -> None:
        self.plan, self.writer, self.result, self.done = plan, writer, result, done
        self.recorder, self.sink, self.judge = recorder, sink, judge
        self.written: set[str] = set()
        self.turns = TurnRunner(
            transport,
            plan.run,
            plan.shape,
            plan.toolbox,
            plan.counter,
            plan.budget,
            plan.reserved,
        )

    async def ask(self, conv: Conversation, sample: int = 0) -> None:
        """Ask a conversation's turns in order; a failed turn skips the ones after it.

        An unexpected exception (a bug, in a scorer say) ends this conversation with an error
        record; whatever was already written stays, and other conversations go on.
        """
        history: list[Exchange] = []
        failed_turn: int | None = None
        state = ConversationState(self.plan.run.conversation_state)
        recorder = self.recorder
        for number, turn in enumerate(conv.turns, start=1):
            resumed = self._resumed(conv, number, sample)
            if resumed is not None:  # resumed: reuse the answers, send nothing
                self.result.add(resumed)
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
                ids = recorder.ids(conv, number, sample)
                self._write(recorder.failed(ids, conv, number, turn, sample, skipped))
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
                ids = recorder.ids(conv, number, sample, step)
                unwritten = [rid for rid in ids if rid not in self.written]
                if unwritten:
                    self._write(recorder.failed(unwritten, conv, number, turn, sample, error, step))
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
            found = [self.done.get(rid) for rid in self.recorder.ids(conv, number, sample, step)]
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
        recorder = self.recorder
        collected: list[ToolResult] = []
        last: list[TranscriptRecord] = []

        @functools.cache
        def ids(step: int) -> list[str]:
            return recorder.ids(conv, number, sample, step)

        def on_step(step: Step) -> None:
            collected.extend(step.tool_results)
            records = recorder.step_records(
                conv, number, turn, sample, step, collected, ids(step.number)
            )
            self._write(records)
            steps_written.append(step.number)
            last[:] = records[:1]

        result: TurnResult = await self.turns.ask(
            history,
            turn.question,
            state,
            on_step,
            sample=sample,
            call_ids=lambda step: ids(step)[0],
        )
        if result.error is not None:
            step = steps_written[-1] + 1 if steps_written else 0
            records = recorder.failed(ids(step), conv, number, turn, sample, result.error, step)
            self._write(records)
            return records[0]
        return last[0]

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
        self.result.add(data)
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
