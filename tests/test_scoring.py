import pytest

from runner.base.schema import ScorerSpec
from runner.core.scoring import check_scorer, score_answer
from runner.core.tools import ToolResult
from runner.wire.completion import ToolCall

LOOSE = ScorerSpec(kind="exact")
STRICT = ScorerSpec(kind="exact", ignore_case=False, normalize_whitespace=False)


@pytest.mark.parametrize(
    ("kind", "answer", "expected", "spec", "score"),
    [
        ("exact", "  Paris ", "paris", LOOSE, 1.0),
        ("exact", "Paris", "paris", STRICT, 0.0),
        ("exact", "New   York", "new york", LOOSE, 1.0),
        ("exact", "New   York", "New York", STRICT, 0.0),
        ("contains", "The capital is Paris.", "paris", LOOSE, 1.0),
        ("contains", "The capital is Lyon.", "paris", LOOSE, 0.0),
        ("regex", "It is 84, I think", r"\b84\b", LOOSE, 1.0),
        ("regex", "PARIS", "^paris$", LOOSE, 1.0),
        ("regex", "PARIS", "^paris$", STRICT, 0.0),
        ("numeric", "12 times 7 is 84.", "84", LOOSE, 1.0),
        ("numeric", "It is 1,000 exactly", "1000", LOOSE, 1.0),
        ("numeric", "about 3.14", "3.1416", ScorerSpec(kind="numeric", tolerance=0.01), 1.0),
        ("numeric", "about 3.14", "3.1416", ScorerSpec(kind="numeric", tolerance=0.0), 0.0),
        ("numeric", "no number here", "5", LOOSE, 0.0),
    ],
)
def test_scorers(kind, answer, expected, spec, score) -> None:
    assert score_answer(answer, expected, spec, kind) == score


def test_nothing_to_compare_is_no_score() -> None:
    assert score_answer("Paris", None, LOOSE) is None
    assert score_answer(None, "Paris", LOOSE) is None


def test_the_sets_kind_applies_unless_a_turn_names_one() -> None:
    spec = ScorerSpec(kind="contains")
    assert score_answer("it is Paris", "paris", spec) == 1.0
    assert score_answer("it is Paris", "paris", spec, "exact") == 0.0


@pytest.mark.parametrize(
    ("kind", "expected", "problem"),
    [
        ("fuzzy", "x", "unknown scorer 'fuzzy'"),
        ("regex", "(", "not a valid regex"),
        ("numeric", "eighty", "not a number"),
    ],
)
def test_bad_scorers_are_caught_up_front(kind, expected, problem) -> None:
    assert problem in check_scorer(kind, expected, "here")
    assert check_scorer("numeric", "84", "here") is None


CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "country": {"type": "string"}},
    "required": ["capital", "country"],
    "additionalProperties": False,
}
JSON = ScorerSpec(kind="json")


@pytest.mark.parametrize(
    ("answer", "expected", "schema", "score"),
    [
        ('{"capital": "Paris", "country": "France"}', None, None, 1.0),
        ("The capital is Paris.", None, None, 0.0),
        ('{"capital": "Paris",}', None, None, 0.0),
        ('```json\n{"capital": "Paris"}\n```', '{"capital": "Paris"}', None, 1.0),
        ('```\n{"capital": "Paris"}\n```\n', '{"capital": "Paris"}', None, 1.0),
        ('Here: ```json\n{"capital": "Paris"}\n```', None, None, 0.0),  # text around a fence
        ('{"capital": "Paris", "country": "France"}', None, CAPITAL, 1.0),
        ('{"capital": "Paris"}', None, CAPITAL, 0.0),  # country is required
        ('{"capital": "Paris", "country": "France", "x": 1}', None, CAPITAL, 0.0),
        ('{"capital": "Paris", "country": "France"}', '{"capital": "Paris"}', CAPITAL, 1.0),
        ('{"capital": "Lyon", "country": "France"}', '{"capital": "Paris"}', CAPITAL, 0.0),
        ('{"capital": "paris"}', '{"capital": "Paris"}', None, 0.0),  # exact, case included
        ('{"a": {"b": 1, "c": 2}, "d": 3}', '{"a": {"b": 1.0}}', None, 1.0),  # nested subset
        ('{"a": {"b": true}}', '{"a": {"b": 1}}', None, 0.0),  # true is not 1
        ('{"a": [1, 2, 3]}', '{"a": [1, 2]}', None, 0.0),  # arrays are exact
        ('{"a": [{"b": 1, "c": 2}]}', '{"a": [{"b": 1}]}', None, 0.0),  # objects in them too
        ("[1, 2]", "[1, 2]", None, 1.0),
        ('"Paris"', '"Paris"', None, 1.0),
        ("42", '{"answer": 42}', None, 0.0),
    ],
)
def test_json_scorer(answer, expected, schema, score) -> None:
    assert score_answer(answer, expected, JSON, schema=schema) == score


def test_json_scorer_uses_the_draft_the_schema_names() -> None:
    # Draft 4 reads exclusiveMaximum as a flag; 2020-12 as a bound (where `true` is invalid)
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "maximum": 5,
        "exclusiveMaximum": True,
    }
    assert score_answer("5", None, JSON, schema=draft4) == 0.0
    assert score_answer("4", None, JSON, schema=draft4) == 1.0


def test_json_scorer_needs_an_answer() -> None:
    assert score_answer(None, '{"capital": "Paris"}', JSON) is None


def calls(*pairs: tuple[str, str]) -> list[ToolResult]:
    return [ToolResult(ToolCall(f"c{i}", name, args), "ok") for i, (name, args) in enumerate(pairs)]


TOOL = ScorerSpec(kind="tool_call")
PARIS = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


@pytest.mark.parametrize(
    ("made", "expected", "score"),
    [
        (calls(("get_weather", '{"city": "Paris"}')), PARIS, 1.0),
        (calls(("get_weather", '{"city": "Paris", "unit": "C"}')), PARIS, 1.0),  # subset
        (calls(("get_time", '{"city": "Paris"}')), PARIS, 0.0),  # wrong name
        (calls(("get_weather", '{"city": "Lyon"}')), PARIS, 0.0),  # argument mismatch
        (calls(("get_weather", '{"town": "Paris"}')), PARIS, 0.0),  # missing argument
        (calls(("get_weather", '{"city": Paris}')), PARIS, 0.0),  # arguments not JSON
        (calls(("get_weather", '{"city": Paris}')), '{"name": "get_weather"}', 1.0),
        (
            calls(("get_weather", '{"city": "Lyon"}'), ("get_weather", '{"city": "Paris"}')),
            PARIS,
            1.0,
        ),
        ([], PARIS, 0.0),  # no calls
    ],
)
def test_tool_call_scorer(made, expected, score) -> None:
    assert score_answer("It is sunny.", expected, TOOL, tool_calls=made) == score


def test_tool_call_scorer_scores_the_calls_without_an_answer() -> None:
    made = calls(("get_weather", '{"city": "Paris"}'))
    assert score_answer(None, PARIS, TOOL, tool_calls=made) == 1.0
    assert score_answer(None, PARIS, TOOL) == 0.0
    assert score_answer("Paris", None, TOOL, tool_calls=made) is None
    # a ToolCall without its result counts too
    assert score_answer(None, PARIS, TOOL, tool_calls=[made[0].call]) == 1.0
    # a turn may name the scorer while the set has another
    assert score_answer(None, PARIS, LOOSE, "tool_call", tool_calls=made) == 1.0


@pytest.mark.parametrize(
    ("kind", "expected", "problem"),
    [
        ("json", "{capital: Paris}", "expected '{capital: Paris}' is not valid JSON (Expecting"),
        ("tool_call", "get_weather", "is not valid JSON"),
        ("tool_call", '{"arguments": {}}', "is not a tool call with a name: write it as {"),
        ("tool_call", '["get_weather"]', "is not a tool call with a name"),
        ("tool_call", '{"name": 3}', "is not a tool call with a name"),
        ("tool_call", '{"name": "f", "args": {}}', "has the unknown key 'args'"),
        ("tool_call", '{"name": "f", "arguments": "x"}', "has arguments that are not an object"),
        ("jsn", "{}", "use one of exact, contains, regex, numeric, json, tool_call"),
    ],
)
def test_bad_json_and_tool_call_expectations_are_caught_up_front(kind, expected, problem) -> None:
    assert problem in check_scorer(kind, expected, "here")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("json", '{"capital": "Paris"}'), ("json", "42"), ("tool_call", PARIS), ("tool_call", None)],
)
def test_good_json_and_tool_call_expectations_pass(kind, expected) -> None:
    assert check_scorer(kind, expected, "here") is None
