"""The project's one reader of Hydra override strings (``key=value``), with no Hydra: the key an
override sets and its value typed exactly as Hydra 1.3's override grammar types it."""

from __future__ import annotations

import builtins
import dataclasses
import functools
import json
import random
import re
from collections.abc import Callable, Collection, Sequence
from copy import copy
from typing import Any

from runner.base.schema import RUN_CONTROL_KEYS

# A sweep (``a,b``, ``choice(...)``, ...) stands as _SWEEP, a glob as _GLOB: never one value,
# whether Hydra builds or refuses it. One that Hydra drops (``{a:choice(),a:1}``) is refused.
_SWEEP, _GLOB = object(), object()


@dataclasses.dataclass(frozen=True)
class _Quoted:
    """A quoted string before Hydra unquotes it: to functions and sorts it is not a str."""

    text: str
    quote: str


# The lexer's VALUE_MODE: each token is the longest match of any rule at its place, the rule
# written first winning a tie (so ``inf`` is a FLOAT, ``null`` a NULL, ``true_ish`` an ID).
_DIGITS = r"[0-9](?:_?[0-9])*"
_UNSIGNED = r"(?:0|[1-9](?:_?[0-9])*)"
_POINT = rf"(?:{_UNSIGNED}?\.{_DIGITS}|{_UNSIGNED}\.)"
_EXPONENT = rf"[eE][+-]?{_DIGITS}"
_FLOAT = rf"[+-]?(?:{_POINT}(?:{_EXPONENT})?|{_UNSIGNED}{_EXPONENT}|[Ii][Nn][Ff]|[Nn][Aa][Nn])"
_RULE_TEXTS = (
    ("(", r"[ \t]*\([ \t]*"),
    (",", r"[ \t]*,[ \t]*"),
    (")", r"[ \t]*\)"),
    ("[", r"\[[ \t]*"),
    ("]", r"[ \t]*\]"),
    ("{", r"\{[ \t]*"),
    ("}", r"[ \t]*\}"),
    (":", r"[ \t]*:[ \t]*"),
    ("=", r"[ \t]*=[ \t]*"),
    ("FLOAT", _FLOAT),
    ("INT", rf"[+-]?{_UNSIGNED}"),
    ("BOOL", r"[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]"),
    ("NULL", r"[Nn][Uu][Ll][Ll]"),
    ("CHAR", r"[/\-\\+.$%*@?|]"),
    ("ID", r"[a-zA-Z_][a-zA-Z0-9_-]*"),
    ("ESC", r"(?:\\[\\()\[\]{}:=, \t])+"),
    ("WS", r"[ \t]+"),
    # up to the first closing quote not escaped by an odd number of backslashes
    ("QUOTED", r"\"(?:[^\"\\]|\\[\s\S])*\"|'(?:[^'\\]|\\[\s\S])*'"),
    ("INTERPOLATION", r"\$\{[^}]+\}"),
)


@functools.cache
def _rules() -> list[tuple[str, re.Pattern[str]]]:
    """The rules, compiled with the first value read (not as the command line starts)."""
    return [(kind, re.compile(rule)) for kind, rule in _RULE_TEXTS]


_PRIMITIVE = {"ID", "NULL", "INT", "FLOAT", "BOOL", "INTERPOLATION", "CHAR", ":", "ESC", "WS"}
_DICT_KEY = _PRIMITIVE - {":", "INTERPOLATION"}

# The key before the first ``=`` (the lexer's DEFAULT_MODE): ``key``, ``+key``, ``++key`` or
# ``~key``, where a key is a package or ``group/name`` (IDs), then maybe ``@package``.
_WORD = r"[A-Za-z_$][A-Za-z0-9_$-]*"
_PART = rf"(?:{_WORD}|{_UNSIGNED})"
_PACKAGE = rf"(?:{_PART}(?:\.{_PART})+|{_WORD})?"
_ID = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY = rf"(?:~|\+\+?)?(?:{_ID}(?:/{_ID})+|{_PACKAGE})(?:@{_PACKAGE})?"


def _tokens(text: str) -> list[tuple[str, str]]:
    """The VALUE_MODE tokens of ``text`` as (kind, text)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        found = [(kind, m[0]) for kind, rule in _rules() if (m := rule.match(text, pos))]
        if not found:
            raise ValueError(f"no token of Hydra's grammar at {text[pos:]!r}")
        tokens.append(max(found, key=lambda token: len(token[1])))  # max keeps the first
        pos += len(tokens[-1][1])
    return tokens


def _unquote(token: str) -> _Quoted:
    """A QUOTED token's text: ``\\'`` is ``'``, and backslashes before a quote are halved."""
    quote, body = token[0], token[1:-1]
    return _Quoted(re.sub(rf"(\\+)(?={quote}|\Z)", lambda m: m[1][: len(m[1]) // 2], body), quote)


def _drop(value: Any) -> None:
    """Check a value Hydra drops (an argument it ignores, a key given again): no sweep in it."""
    if _holds_sweep(value):
        raise ValueError("a sweep that Hydra drops: refused here, as Hydra may refuse it")


class _Parser:
    """Recursive descent over the tokens of the text after ``key=``, by the rule ``value``."""

    def __init__(self, text: str) -> None:
        self.tokens = [*_tokens(text.lstrip(" \t")), ("EOF", "")]  # ``=`` takes the blanks
        self.pos = 0

    def peek(self, ahead: int = 0) -> str:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)][0]

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            raise ValueError(f"expected {kind}, found {self.peek()}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def items(self, close: str, item: Callable[[], Any]) -> list[Any]:
        """``item (, item)*`` up to ``close``, or nothing before ``close``."""
        found = [] if self.peek() == close else [item()]
        while found and self.peek() == ",":
            self.take(",")
            found.append(item())
        self.take(close)
        return found

    def value(self) -> Any:
        """``element`` or ``element (, element)+`` (a simple choice sweep); nothing is ``""``."""
        if self.peek() == "EOF":
            return ""
        elements = self.items("EOF", self.element)
        return elements[0] if len(elements) == 1 else _SWEEP

    def element(self) -> Any:
        kind = self.peek()
        if kind == "ID" and self.peek(1) == "(":
            return self.function()
        if kind == "[":
            self.take("[")
            return self.items("]", self.element)
        if kind == "{":
            self.take("{")
            return self.keyed(self.items("}", self.pair))
        if kind == "QUOTED":
            return _unquote(self.take("QUOTED"))
        return self.primitive(_PRIMITIVE)

    def pair(self) -> tuple[Any, Any]:
        key = self.primitive(_DICT_KEY)
        self.take(":")
        return key, self.element()

    def keyed(self, pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:  # the last value wins
        found: dict[Any, Any] = {}
        for key, item in pairs:
            _drop(found.get(key))
            found[key] = item
        return found

    def primitive(self, kinds: set[str]) -> Any:
        """A run of tokens, outer blanks dropped: one token typed, several joined as text."""
        start = self.pos
        while self.peek() in kinds:
            self.pos += 1
        run = self.tokens[start : self.pos]
        if not run or [kind for kind, _ in run] == ["WS"]:
            raise ValueError(f"no value before {self.peek()}")
        run = run[1:] if run[0][0] == "WS" else run
        run = run[:-1] if run[-1][0] == "WS" else run
        if len(run) > 1:
            return "".join(text[1::2] if kind == "ESC" else text for kind, text in run)
        kind, text = run[0]
        if kind in ("INT", "FLOAT"):
            return int(text) if kind == "INT" else float(text)
        if kind in ("BOOL", "NULL"):
            return text.lower() == "true" if kind == "BOOL" else None
        return text[1::2] if kind == "ESC" else text

    def function(self) -> Any:
        """``name(args, keyword=args)``, evaluated as Hydra evaluates it."""
        name = self.take("ID")
        self.take("(")
        args = self.items(")", self.argument)
        positional = [arg for keyword, arg in args if keyword is None]
        if any(keyword is None for keyword, _ in args[len(positional) :]):
            raise ValueError("positional argument follows keyword argument")
        return _call(name, positional, self.keyed([(k, v) for k, v in args if k is not None]))

    def argument(self) -> tuple[str | None, Any]:
        keyword = None
        if self.peek() == "ID" and self.peek(1) == "=":
            keyword = self.take("ID")
            self.take("=")
        return keyword, self.element()


# The functions Hydra evaluates: it binds their arguments as Python does, checks their types
# and refuses the override whatever goes wrong.
def _call(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Hydra's evaluation of a function, quoted arguments unquoted (not those in lists)."""
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown function {name}()")
    args = [arg.text if isinstance(arg, _Quoted) else arg for arg in args]
    kwargs = {k: v.text if isinstance(v, _Quoted) else v for k, v in kwargs.items()}
    if any(arg is _GLOB for arg in (*args, *kwargs.values())):  # no function takes a glob
        raise ValueError(f"{name}() of a glob")
    try:
        return _FUNCTIONS[name](*args, **kwargs)
    except Exception as error:  # as Hydra: whatever went wrong, the override is refused
        raise ValueError(f"{type(error).__name__} while evaluating {name}(): {error}") from error


def _cast(convert: Callable[[Any], Any], /, *args: Any, value: Any = None) -> Any:
    """``int(x)`` or ``int(value=x)``, also into lists and dicts; ``int(a, b)`` is a sweep."""
    if (args and value is not None) or (not args and value is None):
        raise TypeError("give positional values or value=")
    value = args[0] if len(args) == 1 else _SWEEP if args else value
    if isinstance(value, _Quoted):
        return _cast(convert, value.text)
    if isinstance(value, dict):
        return {key: _cast(convert, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cast(convert, item) for item in value]
    return _SWEEP if value is _SWEEP else convert(value)  # bool() of a glob is True


def _to_str(value: Any) -> str:
    if not isinstance(value, str | int | float | bool):
        raise TypeError(f"cannot cast {type(value).__name__} to str")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, str) and value.lower() not in ("true", "false"):
        raise ValueError(f"Cannot cast '{value}' to bool")
    return value.lower() == "true" if isinstance(value, str) else bool(value)


def _ordered(args: tuple[Any, ...], sweep: Any, list: Any, reverse: bool) -> tuple[Any, ...]:
    """What ``sort`` and ``shuffle`` work on: ``list=``, else a sweep, else their arguments."""
    if any(arg is None for arg in args) or sweep not in (None, _SWEEP) or type(reverse) is not bool:
        raise TypeError("sort and shuffle take elements and sweeps, reverse= a bool")
    if not isinstance(list, builtins.list | None):
        raise TypeError("list= takes a list")
    _drop((args, sweep) if list is not None else ())  # Hydra takes list= over the others
    return (list,) if list is not None else (_SWEEP,) if sweep is not None else args


def _sort(*args: Any, sweep: Any = None, list: Any = None, reverse: bool = False) -> Any:
    """``sort``: a list sorted, one element as it is, several primitives a sweep."""
    args = _ordered(args, sweep, list, reverse)
    if len(args) == 1:
        return sorted(args[0], reverse=reverse) if isinstance(args[0], builtins.list) else args[0]
    if not args or not all(isinstance(arg, str | int | float | bool) for arg in args):
        raise ValueError("sort takes several primitives, a list or a sweep")
    return _SWEEP


def _shuffle(*args: Any, sweep: Any = None, list: Any = None) -> Any:
    """``shuffle``: a list shuffled as Hydra does (a new order each time), one value listed."""
    args = _ordered(args, sweep, list, False)
    if len(args) != 1 or args[0] is _SWEEP:
        return _SWEEP
    if not isinstance(args[0], builtins.list):
        return [args[0]]
    shuffled = copy(args[0])
    random.shuffle(shuffled)
    return shuffled


def _glob(include: Any, exclude: Any = None) -> Any:
    if not isinstance(include, list | str) or not isinstance(exclude, list | str | None):
        raise TypeError("glob takes strings or lists of them")
    _drop((include, exclude))  # bool() of a glob in a list is True: its patterns are dropped
    return _GLOB


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "int": functools.partial(_cast, int),
    "float": functools.partial(_cast, float),
    "str": functools.partial(_cast, _to_str),
    "bool": functools.partial(_cast, _to_bool),
    "sort": _sort,
    "shuffle": _shuffle,
    "glob": _glob,
    **dict.fromkeys(("choice", "range", "interval", "tag"), lambda *args, **kwargs: _SWEEP),
}


def _plain(value: Any) -> Any:
    """``Override.value()``: quoted strings unquoted, in lists and dicts too."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    return value.text if isinstance(value, _Quoted) else value


def _holds_sweep(value: Any) -> bool:
    """Whether ``value`` is or holds a sweep or a glob."""
    if isinstance(value, list | tuple | dict):
        return any(map(_holds_sweep, value.values() if isinstance(value, dict) else value))
    return value is _SWEEP or value is _GLOB


@functools.lru_cache(maxsize=4096)
def parse_value(raw: str) -> Any:
    """An override value typed as Hydra types it (None, bool, int, float, str), else ``raw``."""
    try:
        value = _plain(_Parser(raw).value())
    except ValueError:  # Hydra would have refused the override
        return raw
    return value if value is None or isinstance(value, bool | int | float | str) else raw


def parse_element(raw: str) -> Any:
    """An override value as Hydra types it, lists and dicts too; ValueError for sweeps."""
    value = _plain(_Parser(raw).value())
    if _holds_sweep(value):
        raise ValueError(f"{raw!r} is or holds a sweep over several values, not one value")
    return value


def override_key(text: str) -> str:
    """The key an override sets (or deletes): ``+a.b=1`` and ``~a.b`` name ``a.b``."""
    return text.lstrip("+~").partition("=")[0]


def parse_override(text: str) -> tuple[str, Any] | None:
    """``key=value`` as (key, typed value); None for deletions, ``hydra`` keys and no value."""
    text = text.strip()
    if text.startswith("~") or "=" not in text:
        return None
    key, _, raw = text.lstrip("+").partition("=")
    key = key.strip()
    if not key or key == "hydra" or key.startswith(("hydra.", "hydra/")):
        return None
    return key, parse_value(raw.strip())


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """The keys a job's override list sets, with their typed values (non-strings skipped)."""
    texts = () if isinstance(overrides, str) or not isinstance(overrides, Sequence) else overrides
    return _parse_override_list(tuple(o for o in texts if isinstance(o, str)))


@functools.lru_cache(maxsize=1024)
def _parse_override_list(overrides: tuple[str, ...]) -> dict[str, Any]:
    # a sweep's records repeat a handful of override lists: parse each once
    return dict(p for p in map(parse_override, overrides) if p is not None)


@functools.lru_cache(maxsize=4096)
def shown_value(text: str) -> str:
    """The value of one override as the report shows it: unquoted, unescaped, lists as JSON."""
    raw = text.lstrip("+").partition("=")[2]
    written = raw.strip()
    value: Any = parse_value(written)
    if value == written and written[:1] in ("[", "{"):  # a list or dict: Hydra reads it whole
        key, _, rest = text.partition("=")
        try:  # a sweep shows as written (Hydra's report shows its sweep object's repr)
            value = parse_element(rest) if re.fullmatch(_KEY, key) else raw
        except ValueError:
            value = raw
    return show(value)


def show(value: Any) -> str:
    """A typed value as the report shows it: ``null``, ``true``, lists and dicts as JSON."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def shown_overrides(texts: list[str]) -> dict[str, str]:
    """A job's overrides as the user means them: key -> shown value, no deletions nor Hydra's."""
    shown: dict[str, str] = {}
    for text in texts:
        key = text.lstrip("+").partition("=")[0]
        if not text.startswith("~") and "=" in text and not key.startswith(("hydra.", "hydra/")):
            shown[key] = shown_value(text)
    return shown


def experiment_overrides(
    overrides: Sequence[str], run_control: Collection[str] = RUN_CONTROL_KEYS
) -> list[str]:
    """The overrides that shape the answers: those not of a ``run_control`` key (by default
    the keys that say how a run goes, not what it asks)."""
    return [str(o) for o in overrides if override_key(o).partition(".")[0] not in run_control]


def format_value(value: Any) -> str:
    """A typed override value as Hydra would read it back: ``null``, ``true``, ``0.7``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def config_label(values: dict[str, Any]) -> str:
    """``key=value`` pairs joined by spaces (``model=gpt-4.1 sampling.temperature=0.7``)."""
    return " ".join(f"{k}={format_value(v)}" for k, v in values.items()) or "default"
