"""The config schema: typed dataclasses of every preset and run setting, and the names they use.

Registered in Hydra's ConfigStore by the command line (``runner.cli.hydra_setup``) so that
every YAML file and override is type-checked as it is merged; ``runner.core.validation`` turns
a composed config into these objects. Plain dataclasses: nothing here imports OmegaConf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MISSING: Any = "???"
"""A value the config must give (OmegaConf's ``MISSING``, which is this string)."""

SAMPLING_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "reasoning_effort",
    "verbosity",
    "n",
)
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
VERBOSITIES = ("low", "medium", "high")
APIS = ("chat", "responses")
# Where a turn's earlier exchanges live: sent by the runner, or kept by the server.
CONVERSATION_STATES = ("client", "previous_response_id", "conversation")
# What a model may be offered: function tools, and the Responses API's built-in tools.
TOOL_KINDS = ("function", "web_search", "file_search", "code_interpreter")
BUILTIN_TOOLS = {"web_search": "web_search", "web_search_preview": "web_search"} | {
    k: k for k in ("file_search", "code_interpreter")
}
# The sampling params the Responses API takes, by their dotted name there.
RESPONSES_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
}

# Keys that say how a run goes, not what it asks: left out of the overrides kept in records,
# so that they do not turn into swept columns (a resumed run would otherwise differ by
# resume=true from the records written before it was killed).
RUN_CONTROL_KEYS = (
    "concurrency",
    "timeout_s",
    "retry",
    "cache",
    "resume",
    "resume_failed",
    "dry_run",
    "progress",
    "batch",
    "batch_poll_s",
)


@dataclass
class Prices:
    """List prices in USD per 1M tokens; null where unknown (cost is then null, never guessed)."""

    input: float | None = None
    cached_input: float | None = None
    output: float | None = None
    # through the Batch API (``batch=true``); cached input there costs half ``cached_input``
    input_batch: float | None = None
    output_batch: float | None = None


@dataclass
class ModelPreset:
    """One model: where it lives, what it costs, how to count its tokens, what it accepts."""

    name: str = MISSING
    engine: str = "openai"
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    context_window: int = MISSING
    max_output_tokens: int = MISSING
    encoding: str | None = "o200k_base"
    prices: Prices = field(default_factory=Prices)
    accepts: list[str] = field(default_factory=lambda: list(SAMPLING_PARAMS))
    max_tokens_param: str = "max_tokens"
    rpm: int | None = None
    tpm: int | None = None
    api: str = "chat"
    tools: list[str] = field(default_factory=lambda: ["function"])


@dataclass
class SystemPreset:
    """A named system message."""

    name: str = MISSING
    message: str = MISSING


@dataclass
class SamplingPreset:
    """Sampling parameters; null means "not sent" (the server's default applies)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: list[str] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    n: int | None = None


@dataclass
class ScorerSpec:
    """How an answer is compared with its expected answer."""

    kind: str = "exact"
    ignore_case: bool = True
    normalize_whitespace: bool = True
    tolerance: float = 0.0


@dataclass
class TurnSpec:
    """One user turn of a conversation, with an optional expected answer."""

    question: str = MISSING
    expected: str | None = None
    scorer: str | None = None


@dataclass
class QuestionItem:
    """A single question (``question``) or a multi-turn conversation (``turns``)."""

    id: str | None = None
    question: str | None = None
    expected: str | None = None
    scorer: str | None = None
    turns: list[TurnSpec] = field(default_factory=list)


@dataclass
class QuestionSet:
    """Questions given inline (``items``) or read from a JSONL/CSV file (``path``)."""

    name: str = MISSING
    path: str | None = None
    items: list[QuestionItem] = field(default_factory=list)
    scorer: ScorerSpec = field(default_factory=ScorerSpec)


@dataclass
class RetryPolicy:
    """How failed calls are retried."""

    max_attempts: int = 6
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_wait_s: float = 600.0


@dataclass
class CacheSettings:
    """The on-disk response cache."""

    enabled: bool = True
    dir: str = "outputs/.cache"


@dataclass
class FunctionTool:
    """A function the model may call: its JSON schema, and what answers it.

    ``_target_`` names the Python callable (``package.module.function``) called with the
    model's arguments; ``output`` is a canned answer instead (``{argument}`` fields filled).
    """

    name: str = MISSING
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    _target_: str | None = None
    output: str | None = None
    strict: bool = False


@dataclass
class ToolSet:
    """The tools offered to the model, and how many rounds of calls a turn may take."""

    name: str = "none"
    functions: list[FunctionTool] = field(default_factory=list)
    builtin: list[dict[str, Any]] = field(default_factory=list)
    choice: str = "auto"
    max_rounds: int = 4


@dataclass
class ResponseFormat:
    """Structured output: ``text`` (nothing sent), ``json_object``, or ``json_schema`` with a
    schema given inline or in a file."""

    type: str = "text"
    name: str = "answer"
    schema: dict[str, Any] | None = None
    schema_path: str | None = None
    strict: bool = True


@dataclass
class JudgeSettings:
    """A model that grades answers against a rubric: the ``judge`` scorer, and re-judging.

    ``model`` is a whole model preset, put there by the judge preset's defaults list
    (``- /model@model: gpt-4.1-mini``); ``model@judge.model=echo`` chooses another.
    """

    name: str = "default"
    model: ModelPreset | None = None
    rubric: str | None = None
    rubric_path: str | None = None
    scale: str = "pass_fail"
    threshold: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass
class RunConfig:
    """The whole composed experiment, as the packaged ``runner.yaml`` lays it out."""

    model: ModelPreset = MISSING
    system: SystemPreset = MISSING
    sampling: SamplingPreset = MISSING
    questions: QuestionSet = MISSING
    tools: ToolSet = field(default_factory=ToolSet)
    response_format: ResponseFormat = field(default_factory=ResponseFormat)
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    conversation_state: str = "client"
    repeat: int = 1
    failed_score: float | None = 0.0
    max_history: int | None = None
    token_budget: int | None = None
    concurrency: int = 16
    timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cache: CacheSettings = field(default_factory=CacheSettings)
    resume: bool = False
    resume_failed: bool = False
    dry_run: bool = False
    progress: bool = True
    batch: bool = False
    batch_poll_s: float = 30.0
