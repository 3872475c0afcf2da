import asyncio
import json
import threading
from pathlib import Path

import pytest

import runner
from runner.base.errors import ConfigError
from runner.base.schema import FunctionTool, ResponseFormat, ToolSet
from runner.core.structured import format_spec, load_schema
from runner.core.tools import Toolbox, ToolResult
from runner.core.validation import validate
from runner.example_tools import calculate
from runner.wire.completion import ToolCall

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = FunctionTool(
    name="get_weather",
    description="Weather in a city.",
    parameters=CITY,
    output="{city}: 18°C and cloudy",
    strict=True,
)
CALC = FunctionTool(
    name="calculate",
    description="Arithmetic.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
    _target_="runner.example_tools.calculate",
)
WEB = {"type": "web_search"}


def box(*functions: FunctionTool, builtin=(), choice: str = "auto") -> Toolbox:
    return Toolbox(
        ToolSet(name="t", functions=list(functions), builtin=list(builtin), choice=choice)
    )


def target(path: str) -> FunctionTool:
    return FunctionTool(name="f", _target_=path)


def call(name: str, arguments: str) -> ToolResult:
    return asyncio.run(box(WEATHER, CALC, *EXTRA).run(ToolCall("call_1", name, arguments)))


# Test tools, named by dotted path like any user's.
def where_am_i() -> dict:
    return {"thread": threading.get_ident(), "note": "ünïcode"}


_BARRIER = threading.Barrier(2, timeout=10)


def meet() -> str:
    _BARRIER.wait()  # returns only when a second call runs at the same time
    return "met"


async def coroutine_tool(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


NOT_CALLABLE = 42
EXTRA = [
    FunctionTool(name="where_am_i", _target_=f"{__name__}.where_am_i"),
    FunctionTool(name="meet", _target_=f"{__name__}.meet"),
    FunctionTool(name="double", _target_=f"{__name__}.coroutine_tool"),
    FunctionTool(name="echo_units", output="{city} in {unit}"),
]


# --- resolution -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "no_such_package.tools.f",
            "tools.functions[0]._target_='no_such_package.tools.f': there is no module "
            "'no_such_package': write it as package.module.function, importable from the "
            "working directory",
        ),
        (
            "runner.example_tools.nope",
            "tools.functions[0]._target_='runner.example_tools.nope': runner.example_tools has "
            "no attribute 'nope': write it as package.module.function, importable from the "
            "working directory",
        ),
        (
            "runner.no_module.f",
            "tools.functions[0]._target_='runner.no_module.f': runner has no attribute "
            "'no_module': write it as package.module.function, importable from the working "
            "directory",
        ),
        (
            f"{__name__}.NOT_CALLABLE",
            f"tools.functions[0]._target_='{__name__}.NOT_CALLABLE' is not callable (it is a "
            "int): name a function",
        ),
        (
            "runner..calculate",
            "tools.functions[0]._target_='runner..calculate' is not a dotted path: write it as "
            "package.module.function, importable from the working directory",
        ),
        (
            f"{__name__}.where_am_i.missing",
            f"tools.functions[0]._target_='{__name__}.where_am_i.missing': "
            f"{__name__}.where_am_i has no attribute 'missing': write it as "
            "package.module.function, importable from the working directory",
        ),
    ],
)
def test_a_bad_target_is_one_line_naming_key_value_and_fix(path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        box(target(path))
    assert str(caught.value) == message


def test_a_module_that_fails_to_import_is_named(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "needs_dep.py").write_text("import not_installed_dep\ndef f():\n    pass\n")
    (tmp_path / "broken_syntax.py").write_text("def f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        box(target("needs_dep.f"))
    assert str(caught.value) == (
        "tools.functions[0]._target_='needs_dep.f': importing needs_dep failed (No module named "
        "'not_installed_dep'): install what it needs"
    )
    with pytest.raises(ConfigError, match=r"importing broken_syntax failed \(SyntaxError: ") as e:
        box(target("broken_syntax.f"))
    assert "\n" not in str(e.value) and str(e.value).endswith(": fix the module")


def test_the_failing_tool_is_named_by_its_index() -> None:
    with pytest.raises(ConfigError, match=r"^tools\.functions\[1\]\._target_='x\.y': "):
        box(WEATHER, target("x.y"))


@pytest.mark.parametrize(
    "path",
    [
        "runner.example_tools.calculate",
        "runner.core.tools.Toolbox",  # a class is callable
        "runner.core.tools.Toolbox.specs",  # an attribute of a class
        "json.dumps",
        "os.path.join",  # a submodule reached as an attribute
        "runner.example_tools.nope",
        "runner.nothing.f",
        "no_such_package.f",
        f"{__name__}.NOT_CALLABLE",
        "runner..x",
        "runner.",
    ],
)
def test_targets_resolve_as_hydra_resolves_them(path: str) -> None:
    from hydra.utils import get_method

    try:
        expected = get_method(path)
    except Exception:
        expected = None
    try:
        found = box(target(path))._targets["f"]
    except ConfigError:
        found = None
    assert found is expected


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("{city", "tools.functions[0].output='{city' is not a template"),
        ("{0} degrees", "has the field {0}: name an argument"),
        ("{} degrees", "has the field {}: name an argument"),
    ],
)
def test_a_bad_canned_output_is_caught_up_front(output: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        box(FunctionTool(name="f", output=output))
    assert message in str(caught.value)


# --- wire definitions -------------------------------------------------------------------------


def test_chat_specs() -> None:
    assert box(WEATHER, CALC).specs("chat") == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city.",
                "parameters": CITY,
                "strict": True,
            },
        },
        {  # strict=false is the default there, so it is left out
            "type": "function",
            "function": {
                "name": "calculate",
                "description": "Arithmetic.",
                "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
            },
        },
    ]


def test_responses_specs_say_strict_either_way_and_add_builtins() -> None:
    file_search = {"type": "file_search", "vector_store_ids": ["vs_1"]}
    assert box(WEATHER, CALC, builtin=[WEB, file_search]).specs("responses") == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": CITY,
            "strict": True,
        },
        {
            "type": "function",
            "name": "calculate",
            "description": "Arithmetic.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
            "strict": False,
        },
        {"type": "web_search"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
    ]


def test_specs_are_copies() -> None:
    toolbox = box(WEATHER)
    toolbox.specs("chat")[0]["function"]["parameters"]["properties"].clear()
    assert toolbox.specs("chat")[0]["function"]["parameters"] == CITY


def test_an_unknown_api_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown API 'grpc'"):
        box(WEATHER).specs("grpc")


@pytest.mark.parametrize("choice", ["auto", "required", "none"])
def test_plain_choices_are_the_same_in_both_apis(choice: str) -> None:
    toolbox = box(WEATHER, choice=choice)
    assert (toolbox.choice("chat"), toolbox.choice("responses")) == (choice, choice)


def test_a_named_choice_in_each_apis_shape() -> None:
    toolbox = box(WEATHER, CALC, choice="calculate")
    assert toolbox.choice("chat") == {"type": "function", "function": {"name": "calculate"}}
    assert toolbox.choice("responses") == {"type": "function", "name": "calculate"}


def test_no_tools_no_choice() -> None:
    assert not box()
    assert box().choice("chat") is None and box().choice("responses") is None
    assert box().specs("chat") == [] and box().specs("responses") == []
    builtin_only = box(builtin=[WEB])
    assert builtin_only and builtin_only.choice("responses") == "auto"
    assert box(WEATHER).names == ["get_weather"] and box(WEATHER).max_rounds == 4


# --- running calls ----------------------------------------------------------------------------


def test_a_real_function_answers() -> None:
    result = call("calculate", '{"expression": "12 * (3 + 4)"}')
    assert result == ToolResult(
        ToolCall("call_1", "calculate", '{"expression": "12 * (3 + 4)"}'), "84"
    )
    assert result.to_dict() == {
        "id": "call_1",
        "name": "calculate",
        "arguments": {"expression": "12 * (3 + 4)"},
        "output": "84",
        "error": None,
    }


def test_a_canned_output_is_filled_with_the_arguments() -> None:
    assert call("get_weather", '{"city": "Paris"}').output == "Paris: 18°C and cloudy"
    # a field the call does not send stays as written
    assert call("echo_units", '{"city": "Oslo"}').output == "Oslo in {unit}"


def test_a_raising_tool_sends_its_error_back() -> None:
    result = call("calculate", '{"expression": "__import__(\'os\')"}')
    message = (
        "ValueError: \"__import__('os')\" is not allowed: use numbers, + - * / ** and parentheses"
    )
    assert (result.error, result.output) == (message, f"error: {message}")


def test_wrong_arguments_are_the_tools_error() -> None:
    result = call("calculate", '{"expr": "1 + 1"}')
    assert result.error == "TypeError: calculate() got an unexpected keyword argument 'expr'"


def test_arguments_that_are_not_json() -> None:
    result = call("get_weather", '{"city": Paris}')
    assert result.error == "JSONDecodeError: Expecting value: line 1 column 10 (char 9)"
    assert result.output == "error: JSONDecodeError: Expecting value: line 1 column 10 (char 9)"
    assert result.to_dict()["arguments"] == '{"city": Paris}'  # kept as sent


def test_arguments_that_are_not_an_object() -> None:
    result = call("get_weather", '["Paris"]')
    assert result.error == "ValueError: the arguments must be a JSON object, not an array"
    assert result.to_dict()["arguments"] == '["Paris"]'


def test_empty_arguments_are_no_arguments() -> None:
    result = call("where_am_i", "")
    assert result.error is None and result.to_dict()["arguments"] == {}


def test_an_unknown_tool() -> None:
    result = call("get_time", "{}")
    assert result.error == (
        "LookupError: no tool named 'get_time' (the tools are: get_weather, calculate, "
        "where_am_i, meet, double, echo_units)"
    )
    assert result.output == "error: " + result.error


def test_a_value_is_sent_as_json_text() -> None:
    result = call("where_am_i", "{}")
    assert json.loads(result.output)["note"] == "ünïcode"
    assert '"ünïcode"' in result.output  # not \\u-escaped


def test_a_tool_runs_off_the_event_loop_thread() -> None:
    async def main() -> tuple[int, ToolResult]:
        return threading.get_ident(), await box(*EXTRA).run(ToolCall("c", "where_am_i", "{}"))

    loop_thread, result = asyncio.run(main())
    assert result.error is None
    assert json.loads(result.output)["thread"] != loop_thread


def test_slow_tools_run_at_the_same_time() -> None:
    async def main() -> list[ToolResult]:
        toolbox = box(*EXTRA)
        return await asyncio.gather(*(toolbox.run(ToolCall(i, "meet", "{}")) for i in "ab"))

    assert [r.output for r in asyncio.run(main())] == ["met", "met"]


def test_a_coroutine_function_is_awaited() -> None:
    assert call("double", '{"n": 21}').output == "42"


# --- the example calculator -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [("12 * 7", 84), ("144 / 12", 12.0), ("-2 ** 2", -4), ("(1.5 + 2.5) * -(3)", -12.0)],
)
def test_calculate(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("2 < 3", "'2 < 3' is not allowed"),
        ("x + 1", "'x' is not allowed"),
        ("True + 1", "'True' is not allowed"),
        ("7 // 2", "'7 // 2' is not allowed"),
        ("9 ** 9 ** 9", "9 ** 387420489 is too large a number"),
        ("1 +", "not an arithmetic expression"),
        ("", "must be a non-empty string"),
        ("1+" * 600 + "1", "longer than 1000 characters"),
    ],
)
def test_calculate_refuses_anything_else(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        calculate(expression)
    assert message in str(caught.value)


# --- structured output ------------------------------------------------------------------------


def test_an_inline_schema() -> None:
    fmt = ResponseFormat(type="json_schema", name="city", schema=CITY)
    assert load_schema(fmt) == CITY
    assert load_schema(ResponseFormat()) is None


def test_a_schema_file(tmp_path: Path) -> None:
    path = tmp_path / "city.json"
    path.write_text(json.dumps(CITY))
    fmt = ResponseFormat(type="json_schema", schema_path="city.json")
    assert load_schema(fmt, [tmp_path]) == CITY
    assert load_schema(ResponseFormat(type="json_schema", schema_path=str(path))) == CITY


def test_a_schema_file_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "type": "object",\n  "properties": {,}\n}\n')
    with pytest.raises(ConfigError) as caught:
        load_schema(ResponseFormat(type="json_schema", schema_path=str(path)))
    assert str(caught.value) == (
        f"{path}, line 3: not valid JSON (Expecting property name enclosed in double quotes, "
        "column 18): fix the schema file"
    )


def test_a_missing_schema_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^response_format\.schema_path='nope\.json' not found "):
        load_schema(ResponseFormat(type="json_schema", schema_path="nope.json"))


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        (
            ResponseFormat(type="json_schema", schema={"type": 5}),
            "response_format.schema: not a valid JSON schema at type (5 is not valid under any "
            "of the given schemas): fix it",
        ),
        (
            ResponseFormat(type="json_schema", schema={"$schema": "https://example.com/s"}),
            "response_format.schema: $schema='https://example.com/s' names no known JSON schema "
            "draft: use https://json-schema.org/draft/2020-12/schema or leave $schema out",
        ),
        (
            ResponseFormat(type="json_schema", name="a name", schema=CITY),
            "response_format.name='a name' is not a schema name: use 1 to 64 letters, digits, "
            "'_' or '-'",
        ),
    ],
)
def test_a_bad_schema_is_a_config_error(fmt: ResponseFormat, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_schema(fmt)
    assert str(caught.value) == message


def test_a_schema_file_holding_no_object(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=f"^{path}: a JSON schema is an object, not list"):
        load_schema(ResponseFormat(type="json_schema", schema_path=str(path)))


def test_format_specs() -> None:
    fmt = ResponseFormat(type="json_schema", name="city", schema=CITY, strict=True)
    assert format_spec(fmt, CITY, "chat") == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": CITY, "strict": True},
    }
    assert format_spec(fmt, CITY, "responses") == {
        "format": {"type": "json_schema", "name": "city", "schema": CITY, "strict": True}
    }
    json_object = ResponseFormat(type="json_object")
    assert format_spec(json_object, None, "chat") == {"type": "json_object"}
    assert format_spec(json_object, None, "responses") == {"format": {"type": "json_object"}}
    assert format_spec(ResponseFormat(), None, "chat") is None
    assert format_spec(ResponseFormat(), None, "responses") is None


# --- presets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "specs"),
    [
        (["tools=weather"], 1),
        (["tools=calculator"], 1),
        (["tools=web", "model.api=responses"], 1),
        (["tools=files", "model.api=responses"], 1),
        (["tools=code", "model.api=responses"], 1),
        (["tools=weather", "questions=weather_tools"], 1),
        (["response_format=json_object"], 0),
        (["response_format=capital_json", "questions=capitals_json"], 0),
    ],
)
def test_presets_compose_and_validate(overrides: list[str], specs: int) -> None:
    run = validate(runner.compose(overrides))
    toolbox = Toolbox(run.tools)
    assert len(toolbox.specs(run.model.api)) == specs
    schema = load_schema(run.response_format)
    assert (schema is None) == (run.response_format.type != "json_schema")


def test_the_weather_preset_answers_offline() -> None:
    run = validate(runner.compose(["tools=weather"]))
    result = asyncio.run(Toolbox(run.tools).run(ToolCall("c", "get_weather", '{"city": "Paris"}')))
    assert result.output == "Paris: 18°C and cloudy"


def test_the_calculator_preset_calls_the_function() -> None:
    run = validate(runner.compose(["tools=calculator"]))
    arguments = '{"expression": "2 ** 10 - 24"}'
    result = asyncio.run(Toolbox(run.tools).run(ToolCall("c", "calculate", arguments)))
    assert result.output == "1000"


def test_builtin_presets_need_the_responses_api() -> None:
    with pytest.raises(ConfigError, match="works with the Responses API only"):
        validate(runner.compose(["tools=web"]))
