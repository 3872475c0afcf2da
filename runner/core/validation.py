"""Checking a composed config once and turning it into the schema's plain dataclasses.

``validate`` type-checks what Hydra merged (keys unknown to the schema, values of the wrong
type) through OmegaConf, then checks what types cannot: ranges, params a model rejects, the
API and conversation state, tools, batch and the judge. Every error names the key, the bad
value and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
import urllib.parse
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from runner.base.errors import ConfigError
from runner.base.schema import (
    APIS,
    BUILTIN_TOOLS,
    CONVERSATION_STATES,
    REASONING_EFFORTS,
    RESPONSES_PARAMS,
    SAMPLING_PARAMS,
    TOOL_KINDS,
    VERBOSITIES,
    JudgeSettings,
    RunConfig,
)


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
