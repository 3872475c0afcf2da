"""Typed schema of the config tree, where the trees are, and the one-pass validation that
turns a composed config into objects.

The dataclasses are registered in Hydra's ConfigStore (``register_schema``) so that every
YAML file and every command-line override is type-checked as it is merged; ``validate``
then checks what types cannot (ranges, params the model rejects) and returns a
``RunConfig`` of plain dataclasses. Nothing here imports Hydra at module level, so the
engine and notebooks can use the schema without it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner.base.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
"""The packaged config tree (``runner/conf``): the presets every install has."""

USER_CONF = "conf"
"""The user's own tree: ``./conf`` in the directory the runner starts in, searched before
``CONF_DIR`` (the Hydra search-path plugin in ``hydra_plugins/runner_searchpath`` adds it)."""

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


def user_conf_dir() -> Path | None:
    """``./conf`` in the working directory, if there is one."""
    path = Path.cwd() / USER_CONF
    return path if path.is_dir() else None


def config_dirs() -> list[Path]:
    """The config trees of this run, the user's first and the packaged one last.

    Inside a Hydra run, the file trees of the search path Hydra composed with (``./conf``,
    ``--config-dir``, ``--config-path``), in search-path order; elsewhere (``compose`` in a
    notebook), what a run started here would see: ``./conf`` if present. ``CONF_DIR`` ends
    the list.
    """
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        sources = HydraConfig.get().runtime.config_sources
        dirs = [Path(s.path) for s in sources if s.schema == "file" and s.path]
    else:
        dirs = [d for d in (user_conf_dir(), CONF_DIR) if d is not None]
    # The packaged tree last, and always: its question files resolve under --config-path too.
    return [d for d in dirs if d.resolve() != CONF_DIR] + [CONF_DIR]


def find_file(path: str) -> tuple[Path | None, list[Path]]:
    """A file a config names (questions, a schema, a rubric): absolute, or relative to the
    working directory, then to each config tree (``config_dirs``). Returns it, or None, and
    the places tried (for the error the caller raises)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        tried = [candidate]
    else:
        tried = [Path.cwd() / candidate] + [d / candidate for d in config_dirs()]
    return next((p for p in tried if p.is_file()), None), tried


def register_resolvers() -> None:
    """The ``${runner.*:}`` resolvers ``--help`` uses to say where the presets are."""

    def user_tree() -> str:
        found = user_conf_dir()
        if found is not None:
            return f"{found} (searched before the packaged tree)"
        return f"./conf, searched first (none in {Path.cwd()}: `python -m runner init` writes one)"

    resolvers = {
        "runner.packaged_tree": lambda: str(CONF_DIR),
        "runner.user_tree": user_tree,
        "runner.searched_trees": lambda: ", ".join(str(d) for d in config_dirs()),
    }
    for name, resolver in resolvers.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)


def experiment_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides that shape the answers: ``overrides`` less those of ``RUN_CONTROL_KEYS``."""
    kept = []
    for text in overrides:
        key = text.lstrip("+~").partition("=")[0]
        if key.partition(".")[0] not in RUN_CONTROL_KEYS:
            kept.append(str(text))
    return kept


def register_schema() -> None:
    """Register the schema in Hydra's ConfigStore (the packaged ``runner.yaml`` names it first)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="runner_schema", node=RunConfig)


def validate(cfg: DictConfig | RunConfig) -> RunConfig:
    """Check a composed config once and return it as plain dataclasses.

    Raises ``ConfigError`` naming the key, the bad value and the fix.
    """
    if isinstance(cfg, DictConfig):
        try:
            _check_known_keys(cfg, RunConfig, "")
            run = OmegaConf.to_object(cfg)
        except OmegaConfBaseException as exc:
            raise ConfigError(describe_omegaconf_error(exc)) from None
        if not isinstance(run, RunConfig):  # composed without the schema
            run = _from_plain(cfg)
    else:
        run = cfg
    _check_ranges(run)
    _check_accepted_params(run)
    _check_api(run)
    _check_tools(run)
    _check_batch(run)
    _check_judge(run.judge)
    return run


def _check_known_keys(node: Any, cls: type, prefix: str) -> None:
    """Every key is one of the schema's: a key added with ``+key=value`` skips Hydra's check,
    and the dataclasses would drop it without a word (a typo like ``+sampling.temprature``)."""
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _check_known_keys(item, cls, f"{prefix}[{i}]")
        return
    if not isinstance(node, DictConfig):
        return
    inner = _inner_dataclasses(cls)
    for key, value in node.items_ex(resolve=False):
        path = f"{prefix}.{key!s}" if prefix else str(key)
        if key not in inner:
            raise ConfigError(unknown_key_message(path, cls))
        held = inner[key]
        if held is not None:
            _check_known_keys(value, held, path)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _inner_dataclasses(cls: type) -> dict[str, type | None]:
    """Each field of ``cls`` and the dataclass it holds, if any."""
    return {key: _dataclass_in(hint) for key, hint in _hints(cls).items()}


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field holds (itself, optional, or a list of it), if any."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if typing.get_origin(hint) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if (found := _dataclass_in(arg)) is not None:
                return found
    return None


def unknown_key_message(key: str, owner: type | None) -> str:
    """The one-line error for a key that is not in the schema, with the likeliest fix."""
    name = key.rpartition(".")[2]
    known = [f.name for f in dataclasses.fields(owner)] if dataclasses.is_dataclass(owner) else []
    parent = key.rpartition(".")[0]
    close = [f"{parent}.{c}" if parent else c for c in difflib.get_close_matches(name, known, n=1)]
    if not close:  # a nested key written at the wrong level, e.g. temperature=0 for sampling.*
        by_leaf: dict[str, str] = {}
        for k in schema_keys():  # the first key of a leaf name: sampling.temperature, not judge's
            if "." in k:
                by_leaf.setdefault(k.rpartition(".")[2], k)
        close = [by_leaf[c] for c in difflib.get_close_matches(name, list(by_leaf), n=1)]
    hint = (
        f"did you mean {close[0]}?"
        if close
        else (f"known keys here: {', '.join(known)}" if known else "check the spelling")
    )
    return f"unknown key {key}: {hint}"


def schema_keys() -> list[str]:
    """Every key of the schema, dotted (``sampling.temperature``), nested presets included."""
    keys: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        hints = _hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            keys.append(prefix + f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], prefix + f.name + ".")

    walk(RunConfig, "")
    return keys


def _from_plain(cfg: DictConfig) -> RunConfig:
    schema = OmegaConf.structured(RunConfig)
    try:
        merged = OmegaConf.merge(schema, cfg)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(describe_omegaconf_error(exc)) from None


def describe_omegaconf_error(exc: OmegaConfBaseException) -> str:
    """One line from an OmegaConf error: the full key and what was wrong with it."""
    key = getattr(exc, "full_key", None)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if key:
        return f"{key}: {first}"
    return first


# Top-level keys of the schema that take a value; every other key without a dot (and any key
# with a folder in the config tree) names a config group (model, system, hydra/launcher, ...),
# whose choice Hydra turns into a file path.
_VALUE_KEYS = frozenset(f.name for f in dataclasses.fields(RunConfig) if f.default != MISSING)


def check_group_choices(overrides: Sequence[str], trees: Sequence[Path] | None = None) -> None:
    """Every preset chosen by ``overrides`` (``system=concise``, sweeps too) is a name inside
    its group's folder, not a path out of it.

    Hydra joins group and choice into a file path and resolves ``..``, so ``system=../../x``
    would load a YAML file from anywhere. Raises ``ConfigError`` (before Hydra reads a file);
    the message's example preset comes from the first of ``trees`` (default: ``config_dirs()``)
    that has the group.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config_trees = config_dirs() if trees is None else trees
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        group = override.key_or_group
        if group == "judge.model" and not isinstance(override.value(), dict | None):
            raise ConfigError(
                f"{override.input_line}: the judge's model is a preset of conf/model/: choose it "
                f"with model@judge.model={(override.input_line or '').partition('=')[2]}"
            )
        if "." in group or (  # a value (sampling.seed=1, concurrency=4), not a preset
            group in _VALUE_KEYS and not any((Path(d) / group).is_dir() for d in config_trees)
        ):
            continue
        for choice in _choices(override.value()):
            if choice.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", choice):
                raise ConfigError(
                    f"{group}={choice}: a preset name must name a file in the config tree's "
                    f"{group}/ folder{_example(group, config_trees)}"
                )


def _choices(value: Any) -> list[str]:
    """The preset names an override's value chooses: one, a sweep's list, or a list of them."""
    items = getattr(value, "list", value)  # a ChoiceSweep holds its choices in .list
    if not isinstance(items, list):
        items = [items]
    return [str(getattr(item, "text", item)) for item in items if item is not None]


def _example(group: str, trees: Sequence[Path]) -> str:
    for directory in trees:
        presets = sorted(p.stem for p in (Path(directory) / group).glob("*.yaml"))
        if presets:
            return f", e.g. {group}={presets[0]}"
    return ""


def _check_ranges(run: RunConfig) -> None:
    s = run.sampling
    checks: list[tuple[str, Any, bool, str]] = [
        (
            "sampling.temperature",
            s.temperature,
            s.temperature is None or 0 <= s.temperature <= 2,
            "a number from 0 to 2",
        ),
        ("sampling.top_p", s.top_p, s.top_p is None or 0 < s.top_p <= 1, "a number in (0, 1]"),
        (
            "sampling.max_tokens",
            s.max_tokens,
            s.max_tokens is None or s.max_tokens >= 1,
            "a whole number of at least 1",
        ),
        (
            "sampling.presence_penalty",
            s.presence_penalty,
            s.presence_penalty is None or -2 <= s.presence_penalty <= 2,
            "a number from -2 to 2",
        ),
        (
            "sampling.frequency_penalty",
            s.frequency_penalty,
            s.frequency_penalty is None or -2 <= s.frequency_penalty <= 2,
            "a number from -2 to 2",
        ),
        (
            "sampling.reasoning_effort",
            s.reasoning_effort,
            s.reasoning_effort is None or s.reasoning_effort in REASONING_EFFORTS,
            "one of " + ", ".join(REASONING_EFFORTS),
        ),
        ("sampling.n", s.n, s.n is None or 1 <= s.n <= 128, "a whole number from 1 to 128"),
        ("repeat", run.repeat, run.repeat >= 1, "a whole number of at least 1"),
        (
            "failed_score",
            run.failed_score,
            run.failed_score is None or 0 <= run.failed_score <= 1,
            "a number from 0 to 1, or null",
        ),
        ("concurrency", run.concurrency, run.concurrency >= 1, "a whole number of at least 1"),
        ("timeout_s", run.timeout_s, run.timeout_s > 0, "a positive number of seconds"),
        ("batch_poll_s", run.batch_poll_s, run.batch_poll_s > 0, "a positive number of seconds"),
        (
            "retry.max_attempts",
            run.retry.max_attempts,
            run.retry.max_attempts >= 1,
            "a whole number of at least 1",
        ),
        (
            "retry.initial_backoff_s",
            run.retry.initial_backoff_s,
            run.retry.initial_backoff_s >= 0,
            "a number of seconds of at least 0",
        ),
        (
            "retry.max_backoff_s",
            run.retry.max_backoff_s,
            run.retry.max_backoff_s >= run.retry.initial_backoff_s,
            f"a number of seconds of at least retry.initial_backoff_s "
            f"({run.retry.initial_backoff_s!r})",
        ),
        (
            "retry.max_wait_s",
            run.retry.max_wait_s,
            run.retry.max_wait_s > 0,
            "a positive number of seconds",
        ),
        (
            "max_history",
            run.max_history,
            run.max_history is None or run.max_history >= 0,
            "a whole number of at least 0, or null",
        ),
        (
            "token_budget",
            run.token_budget,
            run.token_budget is None or run.token_budget > 0,
            "a positive number of tokens, or null",
        ),
        (
            "model.context_window",
            run.model.context_window,
            run.model.context_window > 0,
            "a positive number of tokens",
        ),
        (
            "model.engine",
            run.model.engine,
            run.model.engine in ("openai", "echo"),
            "'openai' or 'echo'",
        ),
        (
            "model.max_tokens_param",
            run.model.max_tokens_param,
            run.model.max_tokens_param in ("max_tokens", "max_completion_tokens"),
            "'max_tokens' or 'max_completion_tokens'",
        ),
        (
            "model.rpm",
            run.model.rpm,
            run.model.rpm is None or run.model.rpm > 0,
            "a positive number of requests per minute, or null",
        ),
        (
            "model.tpm",
            run.model.tpm,
            run.model.tpm is None or run.model.tpm > 0,
            "a positive number of tokens per minute, or null",
        ),
    ]
    for key, value, ok, wanted in checks:
        if not ok:
            raise ConfigError(f"{key}={value!r} is out of range: use {wanted}")
    if run.model.base_url is not None and not _is_http_url(run.model.base_url):
        raise ConfigError(
            f"model.base_url={run.model.base_url!r} is not an http:// or https:// URL: "
            "write it as http://host:port/v1 (or null for the OpenAI API)"
        )
    unknown = sorted(set(run.model.accepts) - set(SAMPLING_PARAMS))
    if unknown:
        raise ConfigError(
            f"model.accepts lists unknown params {unknown}: use names from "
            + ", ".join(SAMPLING_PARAMS)
        )


def _is_http_url(text: str) -> bool:
    """An http:// or https:// URL with a host (and a valid port, if it has one)."""
    try:
        parts = urllib.parse.urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number up to 65535, or an unclosed [ in the host
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok


def _check_accepted_params(run: RunConfig) -> None:
    rejected = [
        p
        for p in SAMPLING_PARAMS
        if getattr(run.sampling, p) is not None and p not in run.model.accepts
    ]
    if rejected:
        first = rejected[0]
        raise ConfigError(
            f"model {run.model.name} does not accept sampling.{first}="
            f"{getattr(run.sampling, first)!r} (it accepts: {', '.join(run.model.accepts)}); "
            f"set sampling.{first}=null or choose another model"
        )


def _check_api(run: RunConfig) -> None:
    """The API, the conversation state and the params must go together."""
    model = run.model
    if model.api not in APIS:
        raise ConfigError(f"model.api={model.api!r} is not an API: use chat or responses")
    if run.conversation_state not in CONVERSATION_STATES:
        raise ConfigError(
            f"conversation_state={run.conversation_state!r} is not a state: use "
            + ", ".join(CONVERSATION_STATES)
        )
    if run.conversation_state != "client" and model.api != "responses":
        raise ConfigError(
            f"conversation_state={run.conversation_state} keeps the conversation on the server, "
            f"which only the Responses API does: set model.api=responses (model {model.name} "
            "has model.api=chat) or conversation_state=client"
        )
    if run.sampling.verbosity is not None and run.sampling.verbosity not in VERBOSITIES:
        raise ConfigError(
            f"sampling.verbosity={run.sampling.verbosity!r} is out of range: use one of "
            + ", ".join(VERBOSITIES)
        )
    if model.api == "responses":
        for name in SAMPLING_PARAMS:
            value = getattr(run.sampling, name)
            if value is not None and name not in RESPONSES_PARAMS:
                raise ConfigError(
                    f"sampling.{name}={value!r} is not a Responses API parameter "
                    f"(model.api=responses takes {', '.join(RESPONSES_PARAMS)}): set "
                    f"sampling.{name}=null, or model.api=chat"
                )
    fmt = run.response_format
    if fmt.type not in ("text", "json_object", "json_schema"):
        raise ConfigError(
            f"response_format.type={fmt.type!r} is not a format: use text, json_object or "
            "json_schema"
        )
    if fmt.type == "json_schema" and (fmt.schema is None) == (fmt.schema_path is None):
        raise ConfigError(
            "response_format.type=json_schema needs its JSON schema: give exactly one of "
            "response_format.schema (inline) and response_format.schema_path (a .json file)"
        )


def _check_tools(run: RunConfig) -> None:
    """Every tool is well formed and one the model accepts, before any call."""
    tools, model = run.tools, run.model
    unknown = sorted(set(model.tools) - set(TOOL_KINDS))
    if unknown:
        raise ConfigError(
            f"model.tools lists unknown tool kinds {unknown}: use names from "
            + ", ".join(TOOL_KINDS)
        )
    if tools.max_rounds < 1:
        raise ConfigError(
            f"tools.max_rounds={tools.max_rounds} is out of range: use a whole number of at least 1"
        )
    names: set[str] = set()
    for i, tool in enumerate(tools.functions):
        where = f"tools.functions[{i}]"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool.name or ""):
            raise ConfigError(
                f"{where}.name={tool.name!r} is not a tool name: use 1 to 64 letters, digits, "
                "'_' or '-'"
            )
        if tool.name in names:
            raise ConfigError(f"tools.functions has the name {tool.name!r} twice: names are unique")
        names.add(tool.name)
        if (tool._target_ is None) == (tool.output is None):
            raise ConfigError(
                f"{where} ({tool.name}) needs what answers it: give exactly one of _target_ "
                "(a Python callable, package.module.function) and output (a canned answer)"
            )
    offered = (["function"] if tools.functions else []) + [
        BUILTIN_TOOLS.get(str(b.get("type")), str(b.get("type"))) for b in tools.builtin
    ]
    for i, builtin in enumerate(tools.builtin):
        kind = str(builtin.get("type"))
        if kind not in BUILTIN_TOOLS:
            raise ConfigError(
                f"tools.builtin[{i}].type={kind!r} is not a built-in tool: use web_search, "
                "file_search or code_interpreter"
            )
        if model.api != "responses":
            raise ConfigError(
                f"the built-in tool {kind} (tools={tools.name}) works with the Responses API "
                f"only: set model.api=responses (model {model.name} has model.api=chat)"
            )
    for kind in offered:
        if kind not in model.tools:
            raise ConfigError(
                f"model {model.name} does not accept {kind} tools (tools={tools.name}; it "
                f"accepts: {', '.join(model.tools) or 'none'}): choose another tool set "
                "(tools=none) or another model"
            )
    if offered and (run.sampling.n or 1) > 1:
        raise ConfigError(
            f"sampling.n={run.sampling.n} with tools (tools={tools.name}) is not supported: a "
            "tool loop follows one answer; set sampling.n=null or tools=none"
        )
    choices = ("auto", "required", "none", *names)
    if tools.choice not in choices:
        raise ConfigError(
            f"tools.choice={tools.choice!r} is not a choice: use auto, required, none or a "
            "function's name"
        )


def _check_batch(run: RunConfig) -> None:
    """``batch=true`` needs a server with the Batch API, and a conversation the runner sends."""
    if not run.batch:
        return
    if run.model.engine == "echo":
        raise ConfigError(
            f"batch=true sends the calls through OpenAI's Batch API, which model {run.model.name} "
            "(engine echo, offline) does not have: choose an OpenAI model or set batch=false"
        )
    if run.conversation_state != "client":
        raise ConfigError(
            f"batch=true with conversation_state={run.conversation_state} is not supported (each "
            "round of a batch sends its conversations' history itself): set "
            "conversation_state=client or batch=false"
        )


def judge_points(scale: str) -> int | None:
    """The best grade of a ``1-N`` judge scale (N); None for ``pass_fail``.

    Raises ``ConfigError`` for anything else.
    """
    if scale == "pass_fail":
        return None
    match = re.fullmatch(r"1-(\d+)", scale)
    if match is None or not 2 <= int(match[1]) <= 100:
        raise ConfigError(
            f"judge.scale={scale!r} is not a scale: use pass_fail, or 1-N for grades 1 to N "
            "(N from 2 to 100, e.g. 1-5)"
        )
    return int(match[1])


def _check_judge(judge: JudgeSettings) -> None:
    """The judge's scale, threshold, params and model go together; checked whether or not a
    question uses the judge, so that a bad preset fails at once. (A missing model or rubric
    matters only to a run that uses the judge: ``runner.core.judge.plan_judge`` says so.)"""
    points = judge_points(judge.scale)
    if points is not None and (judge.threshold is None or not 1 <= judge.threshold <= points):
        raise ConfigError(
            f"judge.threshold={judge.threshold!r} does not fit judge.scale={judge.scale}: give "
            f"the lowest passing grade, a whole number from 1 to {points}"
        )
    if judge.temperature is not None and not 0 <= judge.temperature <= 2:
        raise ConfigError(
            f"judge.temperature={judge.temperature!r} is out of range: use a number from 0 to 2, "
            "or null"
        )
    if judge.max_tokens is not None and judge.max_tokens < 1:
        raise ConfigError(
            f"judge.max_tokens={judge.max_tokens!r} is out of range: use a whole number of at "
            "least 1, or null"
        )
    model = judge.model
    if model is None:
        return
    if model.engine not in ("openai", "echo"):
        raise ConfigError(
            f"judge.model.engine={model.engine!r} is out of range: use 'openai' or 'echo'"
        )
    if model.api not in APIS:
        raise ConfigError(f"judge.model.api={model.api!r} is not an API: use chat or responses")
    if model.base_url is not None and not _is_http_url(model.base_url):
        raise ConfigError(
            f"judge.model.base_url={model.base_url!r} is not an http:// or https:// URL: write "
            "it as http://host:port/v1 (or null for the OpenAI API)"
        )
    for key, value in (("temperature", judge.temperature), ("max_tokens", judge.max_tokens)):
        if value is not None and key not in model.accepts:
            raise ConfigError(
                f"judge model {model.name} does not accept judge.{key}={value!r} (it accepts: "
                f"{', '.join(model.accepts)}); set judge.{key}=null or choose another judge model"
            )


def token_budget(run: RunConfig) -> tuple[int, int]:
    """The prompt-plus-answer budget and the tokens reserved for the answer.

    The budget is the context window, or ``token_budget`` when smaller; the reserve is
    ``sampling.max_tokens``, else the model's max output. Raises ``ConfigError`` when the
    reserve leaves no room for a prompt.
    """
    budget = min(run.token_budget or run.model.context_window, run.model.context_window)
    reserved = run.sampling.max_tokens or run.model.max_output_tokens
    if reserved >= budget:
        raise ConfigError(
            f"{reserved} tokens reserved for the answer leave no room for a prompt in a budget of "
            f"{budget}: lower sampling.max_tokens or raise token_budget"
        )
    return budget, reserved


def sampling_params(run: RunConfig) -> dict[str, Any]:
    """The sampling params exactly as they go on the wire (nulls left out, max_tokens renamed)."""
    params: dict[str, Any] = {}
    for name in SAMPLING_PARAMS:
        value = getattr(run.sampling, name)
        if value is None:
            continue
        if name == "max_tokens":
            name = run.model.max_tokens_param
        params[name] = list(value) if name == "stop" else value
    return params
