"""``runner.analysis.overrides`` against Hydra's own override parser.

The references below mirror the code the module replaces (``results.parse_value`` and
``parse_override``, ``report._override_value``, ``_value`` and ``_overrides``) on Hydra's
``OverridesParser``, so this file does not depend on where that code lives now. They run on a
fixed corpus of values and on a few thousand strings drawn from the grammar's characters and
tokens by seeded generators.

Two differences are documented (see ``test_documented_differences``): the report shows a value
holding a sweep as written, where Hydra's code printed the repr of its sweep object; and a sweep
that Hydra builds then drops (a dict key given twice, ``sort(list=..., sweep=...)``) is refused.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import random
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Sweep
from hydra.errors import HydraException

from runner.analysis import overrides
from runner.analysis.overrides import (
    config_label,
    experiment_overrides,
    format_value,
    override_key,
    parse_element,
    parse_override,
    parse_overrides,
    parse_value,
    show,
    shown_overrides,
    shown_value,
)

REFUSED = object()  # Hydra refused the text, or parse_element raised ValueError
_PARSER = OverridesParser.create()

# ---------------------------------------------------------------------------------------------
# References: today's code, on Hydra's parser.


def hydra(text: str) -> Any:
    """``Override.value()`` of a whole override, REFUSED where Hydra raises its own errors.
    Parsed once, but for a ``shuffle``: it draws from ``random`` each time."""
    return _hydra(text) if "shuffle" in text else _hydra_once(text)


def _hydra(text: str) -> Any:
    with warnings.catch_warnings():  # ANTLR's ambiguity reports are warnings in production
        warnings.simplefilter("ignore")
        try:
            return _PARSER.parse_override(text).value()
        except HydraException:
            return REFUSED


_hydra_once = functools.cache(_hydra)


def ref_parse_value(raw: str) -> Any:
    """Today's ``results.parse_value``."""
    value = hydra(f"key={raw}")
    if value is REFUSED:
        return raw
    return value if value is None or isinstance(value, bool | int | float | str) else raw


def ref_parse_element(raw: str) -> Any:
    """``Override.value()`` where it is one value (holds no sweep), else REFUSED."""
    value = hydra(f"key={raw}")
    return REFUSED if value is REFUSED or holds_sweep(value) else value


def ref_parse_override(text: str) -> tuple[str, Any] | None:
    """Today's ``results.parse_override``."""
    text = text.strip()
    if text.startswith("~") or "=" not in text:
        return None
    key, _, raw = text.lstrip("+").partition("=")
    key = key.strip()
    if not key or key == "hydra" or key.startswith(("hydra.", "hydra/")):
        return None
    return key, ref_parse_value(raw.strip())


def ref_value(value: Any) -> str:
    """Today's ``report._value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def ref_shown(text: str, *, today: bool = False) -> str:
    """Today's ``report._override_value`` then ``_value``; unless ``today``, with the documented
    difference: a value that is or holds a sweep shows as written."""
    raw = text.lstrip("+").partition("=")[2]
    written = raw.strip()
    value: Any = ref_parse_value(written)
    if value == written and written[:1] in ("[", "{"):
        value = hydra(text)
        if value is REFUSED or (holds_sweep(value) and not today):
            value = raw
    return ref_value(value)


def ref_overrides(texts: list[str]) -> dict[str, str]:
    """Today's ``report._overrides``."""
    shown: dict[str, str] = {}
    for text in texts:
        if text.startswith("~") or "=" not in text:
            continue
        key, _, _raw = text.lstrip("+").partition("=")
        if key.startswith(("hydra.", "hydra/")):
            continue
        shown[key] = ref_shown(text)
    return shown


def holds_sweep(value: Any) -> bool:
    if isinstance(value, list | dict):
        return any(map(holds_sweep, value.values() if isinstance(value, dict) else value))
    return isinstance(value, Sweep | Glob)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 is not 1.0 nor True), nan equal to nan."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        pairs = zip(a.items(), b.items(), strict=False)
        return len(a) == len(b) and all(same(x, y) and same(v, w) for (x, v), (y, w) in pairs)
    return bool(a == b)


def element(raw: str) -> tuple[Any, bool]:
    """``parse_element(raw)`` or REFUSED, and whether it refused a sweep Hydra drops."""
    try:
        return parse_element(raw), False
    except ValueError as error:
        return REFUSED, "Hydra drops" in str(error)


# ---------------------------------------------------------------------------------------------
# The corpus.

FIXED = [
    # blanks, words, numbers
    *["", " ", "  ", "\t", " \t ", "a", "abc", "a b", " a", "a ", " a b ", "a  b", "a\tb"],
    *["0", "1", "-1", "+1", "-0", "+0", "00", "007", "10", "1_000", "1__0", "1_", "_1", "0x10"],
    *["0b1", "1e3", "1e-3", "1E+3", "-1e-3", "+1.5e+3", "1.5", ".5", "5.", "-.5", "+.5", "0.0"],
    *["-0.0", "1.e5", "1.5e", "1e", "e1", "1_0.0_1", "1.5.5", "1..2", "1e5abc", "1_000_000"],
    *["inf", "-inf", "+inf", "Inf", "INF", "infinity", "-infinity", "nan", "NaN", "-nan", "NAN"],
    *["true", "false", "True", "FALSE", "TrUe", "true_ish", "truex", "xtrue", "null", "NULL"],
    *["Null", "nullx", "none", "None", "yes", "no", "on", "off", "y", "n", "5abc", "-5abc"],
    *["2026-11-20", "2026-11-20T10:00:00", "10:00", "gpt-4.1", "gpt-4o-mini", "o3", "-5", "+5"],
    *["claude@20240620", "a-b", "a_b", "a.b", "a.b.c", "a/b/c", "1-2", "1+2", "1*2", "100%"],
    *["a|b", "a?", "a@b", "5-", "--", "--x", "-x", "+x", ".5.", "..5", "1,000", "1 000", "_"],
    # URLs, paths, lone characters
    *["http\\://host\\:8000/v1", "http://host:8000/v1", "https\\://x.y/z?q\\=1", "a/b", "/abs"],
    *["~/x", "./rel", ".", "..", "-", "+", "@", "$", "%", "*", "?", "|", "/", "\\", "~", "#"],
    *["!", "&", "^", "`", ";", "<", ">", "__", "_a", "a1", "A", "Z9"],
    # escapes
    *["a\\", "\\a", "\\\\", "\\\\\\", "\\,", "a\\,b", "a\\ b", "Be\\ brief\\,\\ please", "\\ "],
    *["\\\t", " \\ ", "a\\(b\\)", "\\[a\\]", "\\{a\\}", "a\\=b", "a\\:b", "\\\\,", "a\\\\b"],
    *["a\\b", "\\(", "\\)", "\\\\\\,", "x\\ ", "\\ x", " \\  "],
    # quotes
    *["'Be brief, please'", '"Be brief, please"', "'a b'", '"a,b"', "'a'", '"a"', "''", '""'],
    *["'\\''", '"\\""', "'a\\'b'", '"a\\"b"', "'a\\\\'", '"a\\\\\\"b"', "'\\\\'", "'a\\\\\\\\'"],
    *["'it''s'", "'a'b'", '"a"b"', "'a' ", " 'a'", "'a'  ", "'unterminated", '"x', "'é'"],
    *["'日本語'", "'a\tb'", "'line\\nbreak'", "'a\nb'", "'\"'", '"\'"', "'a\"b'", "'\\\"'"],
    *["'\\'", '"\\"', "'\\\\\\''", "'${x}'", "'[a,b]'", "'{a:1}'", "'1'", "'true'", "'null'"],
    *["'  '", "' a '", '"\\\\\\\\"', "'a''b'", "'a' 'b'"],
    # non-ASCII and control characters
    *["é", "日本語", "emoji 🎉", "a\nb", "\n", "a\r", "\x00", "ﬁ", "K"],
    # interpolations
    *["${oc.env:HOME}", "${now:%Y}", "${now:%Y-%m-%d}", "${a.b}", "${a}b", "x${a}", "${a:${b}}"],
    *["${}", "${a", "$a", "${oc.env:HOME,/tmp}", "${a} ${b}", "${a}${b}", "${ a }"],
    # colons and equals
    *["a=b", "a==b", "=", "a:b", ":", "a:", ":a", " : ", "a : b", "key=value", "a :b", "a: b"],
    # sweeps and commas
    *["a,b", "a, b", "a ,b", "a , b", ",a", "a,", "a,,b", "1,2,3", "[a],[b]", "{a:1},{b:2}"],
    *["[a],b", "a,[b]", "'a','b'", "'a',b", "a,'b,c'"],
    # lists
    *["[a,b]", "[a, b]", "[ a , b ]", "[1, 2.5, null, true]", "[]", "[ ]", "[[]]", "[[1,2],[3]]"],
    *["[a,[b,[c]]]", "['a b', \"c,d\"]", "[a\\,b]", "[a b]", "[,]", "[a,]", "[a", "a]", "[a]b"],
    *["[a] ", " [a]", "[1_000, -inf, nan, .5, 5., 1e-3]", "[${x}, '${y}']", "[a:b]", "[é]"],
    *["['é']", "[{a:1}, {}]", "[ [ ] ]", "[\t1\t]", "[true_ish, TrUe, NULL]", "[a\\]b]"],
    # dicts
    *["{}", "{ }", "{a:1}", "{a:1,b:[x,y]}", "{a: 1, b: 2}", "{a b:1}", "{1:a}", "{null:1}"],
    *["{true:1,1:2}", "{1.5:x}", "{a:{b:{c:1}}}", "{a:'x'}", "{'a':1}", "{a:${x}}", "{${x}:1}"],
    *["{a:b:c}", "{a}", "{a:}", "{:1}", "{a:1,}", "{a:1,a:2}", "{a:[1,{b:2}]}", "{nan:1}"],
    *["{inf:1,-inf:2}", "{a\\,b:1}", "{a-b:c-d}", "{ a : 1 }", "{a:1 }", "{é:1}", "{a:é}"],
    # functions Hydra evaluates (and some it does not know)
    *["choice(a,b)", "choice(a)", "choice()", "choice([a,b])", "choice(choice(a))"],
    *["range(0,3)", "range(3)", "range(0,1,0.1)", "range(a)", "interval(0,1)", "interval(0)"],
    *["glob(*)", "glob(a*,exclude=b*)", "glob([a,b])", "glob(1)", "tag(x,choice(a,b))"],
    *["tag(choice(a))", "tag(x)", "tag(sweep=choice(a))", "sort(5)", "sort(a)", "sort('a')"],
    *["sort([3,1,2])", "sort([b,a])", "sort(['b','a'])", "sort(['a'])", "sort(list=[2,1])"],
    *["sort(list=[2,1],reverse=true)", "sort([2,1],reverse=1)", "sort(3,1,2)", "sort()"],
    *["sort(null)", "sort(5,list=null)", "sort(5,sweep=null)", "sort({a:1})", "sort(5,list=5)"],
    *["sort([[b],[a]])", "sort([1,'a'])", "sort([1,true,0.5])", "sort(choice(b,a))", "str(5)"],
    *["str(true)", "str(1.5)", "str(null)", "str('x')", "str([1,2])", "str({a:1})", "str(nan)"],
    *["str(1e300)", "int(3.7)", "int(-3.7)", "int('3')", "int(' 3 ')", "int('1_0')", "int(true)"],
    *["int(abc)", "int(null)", "int(1e400)", "int(nan)", "int([1.5,'2'])", "int({a:'3'})"],
    *["int(1,2)", "int(value=5)", "int(5,value=6)", "int()", "int(x=1)", "int(value=null)"],
    *["float(1)", "float('1e3')", "float(' 1 ')", "float(abc)", "float(true)", "float(inf)"],
    *["bool(0)", "bool(1)", "bool(1.5)", "bool(nan)", "bool('TRUE')", "bool(false)", "bool(yes)"],
    *["bool(null)", "bool('')", "bool([0,1])", "bool([glob(a)])", "bool(glob(a))", "bool(a,b)"],
    *["json_str({a:1})", "extend_list(a)", "unknown(a)", "int (5)", "int( 5 )", "int(5) "],
    *[" int(5)", "int(5)x", "x int(5)", "str(5),str(6)", "int(int(int('7')))", "str(int(3.9))"],
    *["float(str(2))", "bool(str(true))", "sort(int('5'))", "int(value=5,value=6)", "a(b)"],
    *["int(value=5,6)", "int(int)", "str(str)", "(", ")", "()", "a (b)", "a()", "INT(5)"],
    *["str(${x})", "str('${x}')", "int(+5)", "float(-.5)", "str(-0.0)", "str(1_000)"],
]
# Many of these inside a list, a dict, a cast and a sweep: Hydra reads an element alike anywhere.
NESTED = [f"[{v}]" for v in FIXED[:200]] + [f"{{k:{v}}}" for v in FIXED[:200]]
NESTED += [f"str({v})" for v in FIXED[:150]] + [f"[{v}],x" for v in FIXED[:150]]
CORPUS = list(dict.fromkeys(FIXED + NESTED))

# Random strings: single characters of the grammar, and its tokens and fragments.
_CHARS = "abeEfilnrstuxyzTNF019_-+.$%*@?|/\\:=,()[]{}'\" \t\té~"
_FRAGMENTS = [
    *["a", "b", "x1", "1", "0", "-5", "+3", "1.5", ".5", "5.", "1e-3", "1_000", "inf", "nan"],
    *["true", "False", "null", "'q'", '"d"', "'a,b'", "\\,", "\\ ", "\\\\", "\\", "${x}"],
    *["${a:b}", ",", ", ", " ,", ":", " : ", "=", "[", "]", "{", "}", "(", ")", " ", "int("],
    *["str(", "float(", "bool(", "choice(", "range(", "interval(", "tag(", "sort(", "glob("],
    *["list=", "sweep=", "reverse=", "value=", "json_str(", "'", '"', "\\'", "-", ".", "@"],
    *["/", "%", "é", "\n"],
]
_SCALARS = ["a", "1", "-1", "1.5", "true", "null", "'x'", '"y z"', "'1'", "inf", "x\\ y", "${a}"]
_FUNCTIONS = ["int", "float", "str", "bool", "choice", "range", "interval", "tag", "sort", "glob"]


def _chars(rng: random.Random) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 12)))


def _fragments(rng: random.Random) -> str:
    return "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 8)))


def _structured(rng: random.Random, depth: int = 0) -> str:
    """An element by the grammar: scalars, lists, dicts and function calls, nested."""
    roll = rng.random()
    if depth > 2 or roll < 0.4:
        return rng.choice(_SCALARS)
    if roll < 0.55:
        return "[" + ",".join(_structured(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    if roll < 0.7:
        keys = [
            rng.choice(["a", "b", "1", "null", "true", "k y"]) for _ in range(rng.randint(0, 2))
        ]
        return "{" + ",".join(f"{key}:{_structured(rng, depth + 1)}" for key in keys) + "}"
    args = [_structured(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.2:
        args.append(f"{rng.choice(['value', 'list', 'sweep', 'reverse'])}={_structured(rng, 2)}")
    return f"{rng.choice(_FUNCTIONS)}({','.join(args)})"


def _random_values() -> list[str]:
    rng = random.Random(20261120)
    drawn = [_chars(rng) for _ in range(1400)] + [_fragments(rng) for _ in range(1400)]
    drawn += [",".join(_structured(rng) for _ in range(rng.choice([1, 1, 2]))) for _ in range(900)]
    return [value for value in dict.fromkeys(drawn) if "shuffle" not in value]


RANDOM = _random_values()
ALL = CORPUS + [value for value in RANDOM if value not in set(CORPUS)]


# ---------------------------------------------------------------------------------------------
# The tests.


def test_the_corpus_is_large() -> None:
    assert len(FIXED) >= 300
    assert len(CORPUS) >= 900
    assert len(RANDOM) >= 2500


def test_parse_value_matches_hydra() -> None:
    wrong = []
    for raw in ALL:
        got, expected = parse_value(raw), ref_parse_value(raw)
        if not same(got, expected) and not (got == raw and element(raw)[1]):
            wrong.append((raw, expected, got))
    assert not wrong, wrong[:20]


def test_parse_element_matches_hydra() -> None:
    wrong, dropped = [], []
    for raw in ALL:
        (got, drops), expected = element(raw), ref_parse_element(raw)
        if drops and expected is not REFUSED:
            dropped.append(raw)  # the documented difference, which needs a function call
        elif not (got is expected or same(got, expected)):
            wrong.append((raw, expected, got))
    assert not wrong, wrong[:20]
    assert all("(" in raw for raw in dropped) and len(dropped) <= len(ALL) // 200, dropped


@pytest.mark.parametrize("key", ["k", "+a.b", "++a/b", " k", "~k", "a b", "a@pkg", "k.0x"])
def test_shown_value_matches_the_report(key: str) -> None:
    values = ALL if key in ("k", " k") else CORPUS if key in ("+a.b", "~k", "a b") else FIXED
    wrong = []
    for text in (f"{key}={value}" for value in values):
        got, expected, raw = shown_value(text), ref_shown(text), text.partition("=")[2]
        if got != expected and not (got == raw and element(raw)[1]):  # a dropped sweep
            wrong.append((text, expected, got))
    assert not wrong, wrong[:20]


def test_parse_override_matches_results() -> None:
    shapes = ["k={}", "+k={}", "++a.b={}", "~k={}", " k = {} ", "hydra.run.dir={}", "hydra={}"]
    shapes += ["hydra/launcher={}", "a/b={}", "={}", "k", "{}", "+ k={}", "k=={}"]
    wrong = []
    for value in CORPUS:
        for text in (shape.format(value) for shape in shapes):
            got, expected = parse_override(text), ref_parse_override(text)
            if (got is None) != (expected is None) or (
                got and expected and (got[0] != expected[0] or not same(got[1], expected[1]))
            ):
                wrong.append((text, expected, got))
    assert not wrong, wrong[:20]


def test_shuffle_draws_as_hydra_does() -> None:
    """Hydra's ``shuffle`` draws from ``random``: seeded alike, both give the same order."""
    values = ["shuffle([1,2,3,4,5,6])", "[shuffle([a,b,c,d]),shuffle(list=[1,2,3])]", "shuffle(5)"]
    values += ["{x:shuffle([[1],[2],[3]])}", "sort(shuffle([3,1,2]))", "str(shuffle([1,2,3]))"]
    values += ["shuffle(a,b)", "shuffle()", "shuffle(null)", "shuffle(list=5)", "[shuffle(a,b)]"]
    values += ["[shuffle(['x','y','z'])]", "{a:[shuffle([1,2,3,4])]}"]
    state = random.getstate()
    try:
        for seed, raw in enumerate(values):
            random.seed(seed)
            expected = ref_parse_element(raw)
            random.seed(seed)
            got = element(raw)[0]
            assert got is expected or same(got, expected), raw
            parse_value.cache_clear()  # so that both draw as often
            shown_value.cache_clear()
            random.seed(seed)
            expected = ref_shown(f"k={raw}")
            random.seed(seed)
            assert shown_value(f"k={raw}") == expected, raw
    finally:
        random.setstate(state)


def test_documented_differences() -> None:
    # A value holding a sweep: Hydra's code showed its sweep object's repr; it shows as written.
    assert ref_shown("k=[a],[b]", today=True).startswith("ChoiceSweep(tags=set(), list=[['a']")
    assert shown_value("k=[a],[b]") == "[a],[b]"
    assert ref_shown("k=[choice(a,b)]", today=True).startswith('["ChoiceSweep(')
    assert shown_value("k=[choice(a,b)]") == "[choice(a,b)]"
    # A sweep Hydra builds then drops: refused (Hydra refuses one it cannot build).
    for raw, hydras in [
        ("{a:choice(x,y),a:1}", {"a": 1}),
        ("sort(list=[2,1],sweep=choice(a,b))", [1, 2]),
        ("bool([glob([choice(a)])])", [True]),
        ("int(value=choice(a),value=5)", 5),
    ]:
        assert same(ref_parse_element(raw), hydras)
        with pytest.raises(ValueError, match="Hydra drops"):
            parse_element(raw)
    assert ref_parse_value("int(value=choice(a),value=5)") == 5
    assert parse_value("int(value=choice(a),value=5)") == "int(value=choice(a),value=5)"
    for raw in ("{a:choice(),a:1}", "sort(list=[2,1],sweep=interval(0,1))"):  # Hydra refuses
        assert ref_parse_element(raw) is REFUSED
        with pytest.raises(ValueError):
            parse_element(raw)


def test_parse_element_gives_lists_and_dicts() -> None:
    assert parse_element("[a,b]") == ["a", "b"]
    assert parse_element("[1, 2.5, null, true]") == [1, 2.5, None, True]
    assert parse_element("{a:1,b:[x,'y, z']}") == {"a": 1, "b": ["x", "y, z"]}
    assert parse_element("'Be brief, please'") == parse_element("Be\\ brief\\,\\ please")
    for raw in ("a,b", "choice(a,b)", "range(0,3)", "[interval(0,1)]", "[a", "glob(*)"):
        with pytest.raises(ValueError):
            parse_element(raw)


def test_shown_overrides_match_the_report() -> None:
    jobs = [
        ["model=gpt-4.1", "sampling.temperature=0.7", "+system='Be brief, please'"],
        ["sampling.stop=[a,b]", "~judge", "hydra.run.dir=x", "hydra/launcher=basic", "hydra=1"],
        ["++x={a:1,b:[y]}", "k", " k=1", "a b=[1]", "+k=null", "k=", "k= [a] ", "z=Be\\ brief"],
        ["k=[a],[b]", "k={a:é}", "k=${now:%Y}", "k=1,2", "+k=a\\,b", "k=http\\://h\\:80/v1"],
    ]
    for texts in jobs:
        assert shown_overrides(texts) == ref_overrides(texts)


def test_parse_overrides() -> None:
    texts = ["model=gpt-4.1", "+x.y=1e-3", "~z", "hydra.job.chdir=true", "k=[a,b]", "t=TrUe"]
    assert parse_overrides(texts) == {"model": "gpt-4.1", "x.y": 0.001, "k": "[a,b]", "t": True}
    assert parse_overrides(tuple(texts)) == parse_overrides(texts)
    assert parse_overrides([*texts, 5, None]) == parse_overrides(texts)  # type: ignore[list-item]
    assert parse_overrides("model=x") == {} and parse_overrides(None) == {}  # type: ignore[arg-type]


def test_keys_labels_and_run_control() -> None:
    keys = [override_key(t) for t in ["+a.b=1", "~a.b", "++c=", "d", "e=f=g"]]
    assert keys == ["a.b", "a.b", "c", "d", "e"]
    given = ["model=x", "concurrency=4", "+retry.max=3", "~cache", "sampling.top_p=1", "+x=1"]
    kept = experiment_overrides(given, ("concurrency", "retry", "cache"))
    assert kept == ["model=x", "sampling.top_p=1", "+x=1"]
    shown = [format_value(v) for v in [None, True, False, 0.7, 1, "a"]]
    assert shown == ["null", "true", "false", "0.7", "1", "a"]
    assert config_label({"model": "gpt-4.1", "t": 0.7, "s": None}) == "model=gpt-4.1 t=0.7 s=null"
    assert config_label({}) == "default"


def test_show_is_the_reports() -> None:
    values: list[Any] = [None, True, False, 0, 1, -0.0, 1.5, 1e-3, float("nan"), float("inf")]
    values += ["", "x", "Be brief, please", "é", [1, "é", None, [True]], {"a": [None]}, {1: 2.5}]
    values += [{None: float("nan")}, [], {}]
    assert [show(value) for value in values] == [ref_value(value) for value in values]


def test_caches() -> None:
    assert parse_value.cache_info().maxsize == 4096
    assert shown_value.cache_info().maxsize == 4096


def test_imports_only_the_standard_library() -> None:
    """No Hydra, OmegaConf or openai SDK: the standard library, and the schema's names."""
    nodes = list(ast.walk(ast.parse(Path(overrides.__file__).read_text(encoding="utf-8"))))
    imported = [a.name for node in nodes if isinstance(node, ast.Import) for a in node.names]
    imported += [node.module or "" for node in nodes if isinstance(node, ast.ImportFrom)]
    assert imported and all(
        name.partition(".")[0] in sys.stdlib_module_names or name == "runner.base.schema"
        for name in imported
    )
