"""A job's plan: everything it needs, read from the validated config once, top down, and
checked before any call; and the resume key of each answer (``record_id``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.base.errors import QuestionsError
from runner.base.schema import Prices, RunConfig
from runner.base.transcript import TRANSCRIPT_NAME
from runner.core.costs import batch_prices
from runner.core.history import token_budget
from runner.core.judge import JudgePlan, plan_job_judge
from runner.core.questions import Conversation, load_conversations
from runner.core.scoring import check_scorer
from runner.core.tools import Toolbox
from runner.core.turn import shape_for
from runner.wire.gateway import api_key_for
from runner.wire.request import Shape
from runner.wire.tokens import TokenCounter, encoding_for, get_counter


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
    def prices(self) -> Prices:
        """What a call costs: the preset's prices, or its Batch API prices with ``batch``."""
        prices = self.run.model.prices
        return batch_prices(prices) if self.run.batch else prices

    @property
    def transcript(self) -> Path:
        return self.info.output_dir / TRANSCRIPT_NAME

    def placed(self, info: JobInfo) -> JobPlan:
        """The same plan for a job that writes where ``info`` says (planned before its
        output dir was known)."""
        return dataclasses.replace(self, info=info)


def plan_job(
    run: RunConfig,
    info: JobInfo,
    check_credentials: bool = True,
    trees: Sequence[Path] | None = None,
) -> JobPlan:
    """Load the questions, tools and schema, check scorers, credentials and budgets; raises
    ``RunnerError`` before any call (a dry run skips the credentials).

    Files the config names (questions, a schema, a rubric) are found in ``trees``, the config
    trees the run was composed from (by default those of a run started here).
    """
    conversations = load_conversations(run.questions, trees)
    _check_scorers(run, conversations)
    judge = plan_job_judge(run, conversations, check_credentials, trees)
    if check_credentials:
        api_key_for(run.model)
    budget, reserved = token_budget(run)
    shape, toolbox, schema = shape_for(run, trees)
    params = shape.params
    # What shapes the answers, and so the records' identity. The endpoint is not in it: the
    # same model behind another base URL is checked on resume instead (``runner.core.resume``).
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
