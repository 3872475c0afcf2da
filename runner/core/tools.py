"""Function tools: what the model is offered, and how its calls are answered.

A ``Toolbox`` is built once per job from the run's ``ToolSet``: it resolves every function's
``_target_`` up front (a bad dotted path is a ``ConfigError`` before any call), gives the
wire definitions and ``tool_choice`` for either API, and answers a ``ToolCall`` with a
``ToolResult``. A tool that raises, or a call the runner cannot make (arguments that are not
a JSON object, a tool it does not know), is not an error of the run: the error goes back to
the model as the tool's output, and into the record.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import inspect
import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from runner.base.errors import ConfigError
from runner.base.schema import APIS, FunctionTool, ToolSet
from runner.wire.completion import ToolCall

TOOL_CHOICES = ("auto", "required", "none")


@dataclass
class ToolResult:
    """A call and what answered it: ``output`` is the text sent back to the model; ``error``
    is ``"<ExceptionType>: <message>"`` when the call failed (``output`` then says so too)."""

    call: ToolCall
    output: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The call as records hold it: arguments parsed when they are a JSON object."""
        try:
            arguments: Any = parse_arguments(self.call.arguments)
        except ValueError:
            arguments = self.call.arguments
        return {
            "id": self.call.id,
            "name": self.call.name,
            "arguments": arguments,
            "output": self.output,
            "error": self.error,
        }


def parse_arguments(text: str) -> dict[str, Any]:
    """A call's arguments as a dict; empty text is no arguments. Raises ``ValueError``
    (``json.JSONDecodeError`` for text that is not JSON, else for JSON that is not an object)."""
    if not text.strip():  # some servers send "" for a function without parameters
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"the arguments must be a JSON object, not {_json_type(value)}")
    return value


class Toolbox:
    """The tools of one job: their wire definitions, and the callables that answer them."""

    def __init__(self, toolset: ToolSet) -> None:
        self.toolset = toolset
        self._functions = {tool.name: tool for tool in toolset.functions}
        self._targets: dict[str, Callable[..., Any]] = {}
        for i, tool in enumerate(toolset.functions):
            where = f"tools.functions[{i}]"
            if tool._target_ is not None:
                self._targets[tool.name] = _resolve(tool._target_, f"{where}._target_")
            if tool.output is not None:
                _check_template(tool.output, f"{where}.output")

    def __bool__(self) -> bool:
        return bool(self.toolset.functions or self.toolset.builtin)

    @property
    def max_rounds(self) -> int:
        """Most rounds of tool calls one turn may take."""
        return self.toolset.max_rounds

    @property
    def names(self) -> list[str]:
        """The function tools' names, in the set's order."""
        return list(self._functions)

    def specs(self, api: str) -> list[dict[str, Any]]:
        """The ``tools`` body field for ``api`` (``chat`` or ``responses``).

        Built-in tools go to the Responses API only, as the set gives them (``validate``
        rejects them with ``model.api=chat``).
        """
        _check_api(api)
        specs = [_function_spec(tool, api) for tool in self.toolset.functions]
        if api == "responses":
            specs += [copy.deepcopy(dict(b)) for b in self.toolset.builtin]
        return specs

    def choice(self, api: str) -> str | dict[str, Any] | None:
        """The ``tool_choice`` body field for ``api``: auto, required, none, or a named
        function in that API's shape; None when no tool is offered (nothing to send)."""
        _check_api(api)
        if not self:
            return None
        choice = self.toolset.choice
        if choice in TOOL_CHOICES:
            return choice
        if api == "chat":
            return {"type": "function", "function": {"name": choice}}
        return {"type": "function", "name": choice}

    async def run(self, call: ToolCall) -> ToolResult:
        """Answer one call; never raises for a failed call (the error is in the result).

        A ``_target_`` is called with the arguments as keyword arguments in a worker thread,
        so a slow tool does not hold up the other calls in flight (a coroutine function is
        awaited instead); a canned ``output`` gets its ``{argument}`` fields filled.
        """
        try:
            tool = self._functions.get(call.name)
            if tool is None:
                offered = ", ".join(self._functions) or "none"
                raise LookupError(f"no tool named {call.name!r} (the tools are: {offered})")
            arguments = parse_arguments(call.arguments)
            if tool.output is not None:
                return ToolResult(call, tool.output.format_map(_KeepMissing(arguments)))
            target = self._targets[call.name]
            if inspect.iscoroutinefunction(target):
                value = await target(**arguments)
            else:
                value = await asyncio.to_thread(target, **arguments)
            output = _as_text(value)  # a value JSON cannot hold is the tool's error too
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            return ToolResult(call, f"error: {error}", error)
        return ToolResult(call, output)


def _check_api(api: str) -> None:
    if api not in APIS:
        raise ValueError(f"unknown API {api!r}: use one of {', '.join(APIS)}")


def _function_spec(tool: FunctionTool, api: str) -> dict[str, Any]:
    parameters = copy.deepcopy(dict(tool.parameters))
    if api == "chat":
        function: dict[str, Any] = {
            "name": tool.name,
            "description": tool.description,
            "parameters": parameters,
        }
        if tool.strict:  # Chat Completions' default is false; other servers may not know it
            function["strict"] = True
        return {"type": "function", "function": function}
    # the Responses API's default is strict=true: always say which
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": parameters,
        "strict": tool.strict,
    }


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


class _KeepMissing(dict[str, Any]):
    """Fills a canned output's fields; a field the call did not send stays as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _check_template(text: str, where: str) -> None:
    """A canned output is a ``str.format`` template whose fields are argument names."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ConfigError(
            f"{where}={text!r} is not a template ({exc}): write a literal brace as {{{{ or }}}}"
        ) from None
    for name in fields:
        if not name.isidentifier():
            raise ConfigError(
                f"{where}={text!r} has the field {{{name}}}: name an argument, as in {{city}}, "
                "or write a literal brace as {{ or }}"
            )


def _resolve(path: str, where: str) -> Callable[..., Any]:
    """The callable a dotted path names, found as Hydra's ``_target_`` lookup finds it
    (import the first part, then attributes, importing submodules as needed)."""
    fix = "write it as package.module.function, importable from the working directory"
    parts = path.split(".")
    if not all(parts):
        raise ConfigError(f"{where}={path!r} is not a dotted path: {fix}")
    obj: Any = _import(parts[0], path, where, fix)
    for m, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
            continue
        except AttributeError:
            pass
        parent = ".".join(parts[:m])
        if isinstance(obj, ModuleType):
            obj = _import(f"{parent}.{part}", path, where, fix, parent)
        else:
            raise ConfigError(f"{where}={path!r}: {parent} has no attribute {part!r}: {fix}")
    if not callable(obj):
        raise ConfigError(
            f"{where}={path!r} is not callable (it is a {type(obj).__name__}): name a function"
        )
    return obj  # type: ignore[no-any-return]


def _import(name: str, path: str, where: str, fix: str, parent: str | None = None) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module is there, but something it imports is not
            raise ConfigError(
                f"{where}={path!r}: importing {name} failed ({exc}): install what it needs"
            ) from None
        if parent is None:
            raise ConfigError(f"{where}={path!r}: there is no module {name!r}: {fix}") from None
        leaf = name.rpartition(".")[2]
        raise ConfigError(f"{where}={path!r}: {parent} has no attribute {leaf!r}: {fix}") from None
    except (ImportError, SyntaxError) as exc:
        raise ConfigError(
            f"{where}={path!r}: importing {name} failed ({type(exc).__name__}: {exc}): fix the "
            "module"
        ) from None
