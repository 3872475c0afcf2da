"""Model-graded scoring: a judge model grades answers against a rubric.

A turn scored by ``judge`` (``questions.scorer.kind: judge``, or ``scorer: judge`` on an item or
turn) is asked as any other; once its answer's record is written, the judge is asked through
the same ``Gateway`` (limits, cache, retries) for a verdict in structured output
(``{reasoning, passed}``, or ``{reasoning, grade}`` on a ``1-N`` scale). Each verdict is one
line of ``judgments.jsonl`` beside the transcript, written as the judge's call completes; the
answer's record is never rewritten, and a judge that fails or answers out of range leaves a
judgment with an ``error`` and no score, never a crash.

``runner.analysis.judgments`` reads them back (the summary, ``load_results``);
``runner.core.rejudge`` grades a finished run or sweep again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.analysis.judgments import latest_judgments
from runner.base.errors import ConfigError, CredentialsError
from runner.base.judgment import JUDGMENTS_NAME, Judgment
from runner.base.record import CallError
from runner.base.schema import (
    RESPONSES_PARAMS,
    JudgeSettings,
    ModelPreset,
    ResponseFormat,
    RetryPolicy,
    RunConfig,
)
from runner.base.transcript import TranscriptWriter
from runner.core.costs import call_cost, estimated_usage
from runner.core.files import config_trees, require_file
from runner.core.questions import Conversation
from runner.core.scoring import unfence
from runner.core.structured import format_spec
from runner.core.validation import judge_points
from runner.wire.gateway import Gateway, api_key_for
from runner.wire.request import Shape
from runner.wire.tokens import TokenCounter, encoding_for, get_counter

log = logging.getLogger(__name__)

JUDGE_SCORER = "judge"
_INSTRUCTIONS = (
    "You grade one answer to a question against a rubric. Judge the answer only by the "
    "rubric (and the expected answer, when one is given); do not answer the question "
    'yourself. Reply with a JSON object: first "reasoning", a few sentences on how the '
    "answer meets or misses the rubric, then {verdict}."
)
_PASS_FAIL = '"passed", true if the answer meets the rubric and false if it does not'
_GRADED = '"grade", a whole number from 1 (worst) to {points} (best) by the rubric'


@dataclass
class JudgePlan:
    """A judge ready to call: its model, rubric, scale, request shape and ``key``.

    ``key`` (``judge_key`` in judgments) hashes what decides a verdict: the rubric's text, the
    scale and threshold, and the judge model; a judgment with the same key is not asked again.
    """

    settings: JudgeSettings
    model: ModelPreset
    rubric: str
    points: int | None  # N of a 1-N scale; None for pass_fail
    shape: Shape
    counter: TokenCounter
    reserved: int
    key: str

    @property
    def threshold(self) -> int | None:
        return self.settings.threshold if self.points is not None else None


def plan_judge(
    settings: JudgeSettings,
    check_credentials: bool = True,
    trees: Sequence[Path] | None = None,
) -> JudgePlan:
    """The judge of ``settings``: its rubric read (a file found in ``trees``, as question
    files are), its request shaped, its API key checked.

    Raises ``ConfigError`` (no model chosen, no rubric, a rubric file missing) or
    ``CredentialsError``, before any call.
    """
    model = settings.model
    if model is None:
        raise ConfigError(
            "the judge scorer needs a judge model: choose one with judge=default or "
            "model@judge.model=gpt-4.1-mini (model@judge.model=echo offline)"
        )
    if check_credentials:
        try:
            api_key_for(model)
        except CredentialsError:
            raise CredentialsError(
                f"judge model {model.name} needs an API key: set the environment variable "
                f"{model.api_key_env} (or judge offline with model@judge.model=echo)"
            ) from None
    rubric = _rubric(settings, trees)
    points = judge_points(settings.scale)
    schema = verdict_schema(points)
    fmt = ResponseFormat(type="json_schema", name="judgment", schema=schema, strict=True)
    params: dict[str, Any] = {}
    if settings.temperature is not None:
        params["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        name = model.max_tokens_param if model.api == "chat" else RESPONSES_PARAMS["max_tokens"]
        params[name] = settings.max_tokens
    shape = Shape(
        api=model.api,
        model=model.name,
        params=params,
        text_format=format_spec(fmt, schema, model.api),
    )
    threshold = settings.threshold if points is not None else None
    blob = json.dumps(
        {"rubric": rubric, "scale": settings.scale, "threshold": threshold, "model": model.name},
        sort_keys=True,
        ensure_ascii=False,
    )
    return JudgePlan(
        settings=settings,
        model=model,
        rubric=rubric,
        points=points,
        shape=shape,
        counter=get_counter(encoding_for(model.name, model.encoding)),
        reserved=settings.max_tokens or model.max_output_tokens,
        key=hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16],
    )


def _judged_turns(run: RunConfig, conversations: list[Conversation]) -> set[tuple[str, int]]:
    """(conversation id, turn number) of every turn whose scorer is the judge."""
    set_kind = run.questions.scorer.kind
    return {
        (conv.id, number)
        for conv in conversations
        for number, turn in enumerate(conv.turns, start=1)
        if (turn.scorer or set_kind) == JUDGE_SCORER
    }


def plan_job_judge(
    run: RunConfig,
    conversations: list[Conversation],
    check_credentials: bool = True,
    trees: Sequence[Path] | None = None,
) -> JudgePlan | None:
    """The judge of a job whose scorers use it (None when none does), checked before any call."""
    if not _judged_turns(run, conversations):
        return None
    return plan_judge(run.judge, check_credentials, trees)


def judge_for_job(
    plan: JudgePlan | None,
    run: RunConfig,
    conversations: list[Conversation],
    gateway: Gateway,
    directory: Path,
    on_score: Callable[[str, float], None] | None = None,
) -> JobJudge | None:
    """The judge of a job's answers as they are written (None when no scorer uses it)."""
    if plan is None:
        return None
    turns = _judged_turns(run, conversations)
    return JobJudge(
        plan,
        gateway,
        directory,
        run.retry,
        run.timeout_s,
        lambda record: (record.get("conversation_id"), record.get("turn")) in turns,
        on_score,
    )


def _rubric(settings: JudgeSettings, trees: Sequence[Path] | None) -> str:
    if settings.rubric_path:
        path = resolve_rubric_path(settings.rubric_path, trees)
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise ConfigError(
                f"judge.rubric_path={settings.rubric_path!r} cannot be read ({exc.strerror}): "
                "fix judge.rubric_path"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8: save the rubric file as UTF-8") from None
    else:
        text = settings.rubric or ""
    if not text.strip():
        where = f"the file {settings.rubric_path}" if settings.rubric_path else "judge.rubric"
        raise ConfigError(
            f"the judge has no rubric ({where} is empty): write what a passing answer does in "
            "judge.rubric, or name a file with judge.rubric_path"
        )
    return text.strip()


def resolve_rubric_path(path: str, trees: Sequence[Path] | None = None) -> Path:
    """A rubric file: absolute, or relative to the working directory, then to each config
    tree (``trees``, by default those of a run started here), as question files are found."""
    return require_file(path, config_trees() if trees is None else trees, "judge.rubric_path")


def verdict_schema(points: int | None) -> dict[str, Any]:
    """The JSON schema the judge answers in (strict mode: every property required)."""
    if points is None:
        verdict: dict[str, Any] = {"type": "boolean"}
        name = "passed"
    else:
        verdict = {"type": "integer", "minimum": 1, "maximum": points}
        name = "grade"
    return {
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, name: verdict},
        "required": ["reasoning", name],
        "additionalProperties": False,
    }


def is_final_answer(record: dict[str, Any]) -> bool:
    """A record that holds a turn's answer: no error, an answer, and no tool calls to follow."""
    return (
        record.get("error") is None
        and isinstance(record.get("answer"), str)
        and not record.get("tool_calls")
        and isinstance(record.get("record_id"), str)
    )


def judge_messages(plan: JudgePlan, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The judge's prompt for one answer's record: instructions, then the question, the
    earlier turns of its conversation, the expected answer (if any), the rubric and the
    answer."""
    verdict = _PASS_FAIL if plan.points is None else _GRADED.format(points=plan.points)
    parts = [f"[Question]\n{record.get('question') or ''}"]
    earlier = _earlier_turns(record.get("messages") or [])
    if earlier:
        parts.append("[Earlier turns of the conversation]\n" + earlier)
    if record.get("expected") is not None:
        parts.append(f"[Expected answer]\n{record['expected']}")
    parts.append(f"[Rubric]\n{plan.rubric}")
    parts.append(f"[Answer to grade]\n{record.get('answer') or ''}")
    return [
        {"role": "system", "content": _INSTRUCTIONS.format(verdict=verdict)},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def _earlier_turns(messages: list[Any]) -> str:
    """The user and assistant messages sent before the turn's own question, as text."""
    last_user = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
        default=-1,
    )
    lines = []
    for message in messages[: max(last_user, 0)]:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            continue
        content = message.get("content")
        if isinstance(content, str) and content:
            lines.append(f"{message['role']}: {content}")
    return "\n".join(lines)


def parse_verdict(text: str, points: int | None) -> tuple[int | None, bool, str | None]:
    """``(grade, passed, reasoning)`` from the judge's answer, ``passed`` by the scale alone
    (the caller applies the threshold). Raises ValueError saying what is wrong with it."""
    try:
        value = json.loads(unfence(text))
    except ValueError:
        raise ValueError(f"the judge's answer is not JSON: {_clip(text)!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"the judge's answer is not a JSON object: {_clip(text)!r}")
    reasoning = value.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, str) else None
    if points is None:
        passed = value.get("passed")
        if not isinstance(passed, bool):
            raise ValueError(f"the judge's answer has no true/false 'passed': {_clip(text)!r}")
        return None, passed, reasoning
    grade = value.get("grade")
    if isinstance(grade, float) and grade.is_integer():
        grade = int(grade)
    if isinstance(grade, bool) or not isinstance(grade, int):
        raise ValueError(f"the judge's answer has no whole-number 'grade': {_clip(text)!r}")
    if not 1 <= grade <= points:
        raise ValueError(f"the judge's grade {grade} is out of the scale 1-{points}")
    return grade, True, reasoning


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def judge_answer(
    plan: JudgePlan,
    gateway: Gateway,
    record: dict[str, Any],
    retry: RetryPolicy,
    timeout_s: float,
) -> Judgment:
    """Ask the judge about one answer's record; never raises for a failed call or a bad
    verdict (the judgment's ``error`` says what went wrong, and it has no score)."""
    model = plan.model
    messages = judge_messages(plan, record)
    estimate = plan.counter.count_messages(messages)
    outcome = await gateway.complete(
        model, plan.shape.request(messages), estimate + plan.reserved, retry, timeout_s
    )
    judgment = Judgment(
        record_id=record["record_id"],
        judge_key=plan.key,
        judge=plan.settings.name,
        judge_model=model.name,
        base_url=None if model.engine == "echo" else gateway.endpoint_for(model),
        offline=model.engine == "echo",
        scale=plan.settings.scale,
        threshold=plan.threshold,
        latency_s=None if outcome.latency_s is None else round(outcome.latency_s, 6),
        attempts=outcome.attempts,
        cache_hit=outcome.cache_hit,
        error=outcome.error,
    )
    completion = outcome.completion
    usage = None
    if completion is not None:
        text = completion.answer
        usage = completion.usage or estimated_usage(plan.counter.count_text, estimate, text)
        judgment.usage = usage
    charge = call_cost(outcome, usage, model.prices, estimate, plan.counter.count_text)
    judgment.cost_usd, judgment.cached_cost_usd = charge.cost_usd, charge.cached_cost_usd
    if completion is not None:
        choice = completion.choices[0] if completion.choices else None
        judgment.error = choice.error() if choice is not None else None
        if choice is None:
            judgment.error = CallError("JudgeError", "the judge sent no answer")
        if judgment.error is None:
            _apply_verdict(judgment, plan, text)
    judgment.created_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    return judgment


def _apply_verdict(judgment: Judgment, plan: JudgePlan, text: str) -> None:
    try:
        grade, passed, reasoning = parse_verdict(text, plan.points)
    except ValueError as exc:
        judgment.error = CallError("JudgeError", str(exc))
        return
    judgment.reasoning = reasoning
    if plan.points is None:
        judgment.passed, judgment.score = passed, float(passed)
        return
    assert grade is not None and plan.threshold is not None
    judgment.grade = grade
    judgment.score = round((grade - 1) / (plan.points - 1), 6)
    judgment.passed = grade >= plan.threshold


class JobJudge:
    """Judges a job's answers as their records are written; use as an async context manager.

    ``judged(record)`` says which records the job's scorers send to the judge. Each call runs
    as a task of its own on the job's event loop, so a conversation never waits for a verdict;
    leaving the block waits for the calls still out (or, on an error, cancels them).
    ``on_score`` gets each answer's record id and score, also those of answers judged before
    (a resumed job).
    """

    def __init__(
        self,
        plan: JudgePlan,
        gateway: Gateway,
        directory: Path,
        retry: RetryPolicy,
        timeout_s: float,
        judged: Callable[[dict[str, Any]], bool],
        on_score: Callable[[str, float], None] | None = None,
    ) -> None:
        self.plan, self.gateway, self.retry, self.timeout_s = plan, gateway, retry, timeout_s
        self.judged, self.on_score = judged, on_score
        self.path = directory / JUDGMENTS_NAME
        self.done = {
            rid: j for rid, j in latest_judgments(directory, plan.key).items() if not j["error"]
        }
        self.tasks: set[asyncio.Task[None]] = set()
        self.writer: TranscriptWriter | None = None

    def submit(self, records: Iterable[dict[str, Any]]) -> None:
        """Judge every final answer among ``records`` that this judge has not judged yet."""
        for record in records:
            if not (is_final_answer(record) and self.judged(record)):
                continue
            earlier = self.done.get(record["record_id"])
            if earlier is not None:
                self._score(record["record_id"], earlier.get("score"))
                continue
            self.done[record["record_id"]] = {}
            task = asyncio.get_running_loop().create_task(self._judge(record))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _judge(self, record: dict[str, Any]) -> None:
        try:
            judgment = await judge_answer(
                self.plan, self.gateway, record, self.retry, self.timeout_s
            )
        except Exception as exc:  # a bug here must not lose the job's answers
            log.exception("the judge failed on record %s", record.get("record_id"))
            judgment = Judgment(
                record_id=record["record_id"],
                judge_key=self.plan.key,
                judge=self.plan.settings.name,
                judge_model=self.plan.model.name,
                base_url=None,
                offline=self.plan.model.engine == "echo",
                scale=self.plan.settings.scale,
                threshold=self.plan.threshold,
                error=CallError("InternalError", f"{type(exc).__name__}: {exc}"[:500]),
                created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            )
        if self.writer is None:
            self.writer = TranscriptWriter(self.path)
        try:
            self.writer.write(judgment.to_dict())
        except OSError as exc:
            log.error("cannot write %s (%s): the judgment is lost", self.path, exc)
            return
        self._score(record["record_id"], judgment.score)

    def _score(self, record_id: str, score: Any) -> None:
        if self.on_score is not None and isinstance(score, int | float):
            self.on_score(record_id, float(score))

    async def __aenter__(self) -> JobJudge:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            while self.tasks:
                batch = list(self.tasks)
                self.tasks.difference_update(batch)
                if kind is not None:
                    for task in batch:
                        task.cancel()
                await asyncio.gather(*batch, return_exceptions=kind is not None)
        finally:
            if self.writer is not None:
                self.writer.close()
