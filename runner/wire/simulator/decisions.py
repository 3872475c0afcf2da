"""The model's decisions: whether it calls a function and with what arguments, the JSON it gives
for a schema, where a stop sequence or token limit ends its text, and the items and citations
of the built-in tools it is offered."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from runner.wire.simulator.dialogue import Turn, calls_since_question
from runner.wire.simulator.errors import dumps
from runner.wire.simulator.persona import Persona

WEB_SEARCH_TOOLS = frozenset(
    {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
)
CITED_FILENAME = "notes.md"
_SLUG_RE = re.compile(r"[^a-z0-9]+")
# Given the call ids that the newest tool results answer: whether the model calls again.
Again = Callable[[set[str]], bool]


def function_tools(tools: Any, nested: bool) -> list[dict[str, Any]]:
    """The function tools offered (``{"name", "parameters", ...}``); Chat Completions nests
    each under ``function``, the Responses API has them flat."""
    found = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            spec = tool.get("function") if nested else tool
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                found.append(spec)
    return found


def chosen_tool(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any] | None:
    """The function the model calls: the one ``tool_choice`` names, else the first."""
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        function = choice.get("function")
        name = choice.get("name") or (function.get("name") if isinstance(function, dict) else None)
        for tool in tools:
            if tool["name"] == name:
                return tool
    return tools[0]


def wants_call(turns: list[Turn], tool: dict[str, Any] | None, again: bool) -> bool:
    """Whether the model calls ``tool`` now: on a new question, or (``again``) once more on
    the result of its first call."""
    if tool is None or not turns:
        return False
    newest = turns[-1]
    if newest.kind == "message" and newest.role == "user":
        return True
    return again and newest.kind == "result" and calls_since_question(turns) < 2


def schema_value(schema: Any, text: str) -> Any:
    """A value of the type ``schema`` asks for: ``text`` for strings, 1, true, [], null, the
    first ``enum`` value, the ``const``, the first of ``anyOf``, or an object giving each
    required property a value."""
    if not isinstance(schema, dict):
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and isinstance(schema.get("anyOf"), list) and schema["anyOf"]:
        return schema_value(schema["anyOf"][0], text)
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            key: schema_value(properties.get(key), text) for key in schema.get("required") or []
        }
    simple: dict[Any, Any] = {"integer": 1, "number": 1, "boolean": True, "array": [], "null": None}
    return simple.get(kind, text)


def arguments(tool: dict[str, Any], question: str) -> str:
    """The arguments the model calls ``tool`` with: a value for each required parameter."""
    parameters = tool.get("parameters")
    return dumps(
        schema_value(parameters if isinstance(parameters, dict) else {"type": "object"}, question)
    )


def json_answer(text_format: Any, question: str) -> str | None:
    """The answer to a ``json_schema`` format (a ``response_format`` or ``text.format``), else
    None."""
    if not isinstance(text_format, dict) or text_format.get("type") != "json_schema":
        return None
    spec = text_format.get("json_schema", text_format)  # Chat Completions nests it
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return json.dumps(schema_value(schema, question), ensure_ascii=False)


def token_limit(value: Any) -> int | None:
    """A token limit as the request gives it (a whole number), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stopped(text: str, stop: Any) -> str | None:
    """``text`` up to the first of the stop sequences it holds, or None when it holds none."""
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    at = min((text.find(s) for s in stops if isinstance(s, str) and s and s in text), default=-1)
    return None if at < 0 else text[:at]


def halves(text: str) -> list[str]:
    """``text`` in two pieces (one if it is shorter than two characters), as call arguments
    stream."""
    if len(text) < 2:
        return [text] if text else []
    return [text[: len(text) // 2], text[len(text) // 2 :]]


def builtin_calls(
    persona: Persona, tools: list[Any], include: list[Any], question: str, key: str, at: int
) -> list[dict[str, Any]]:
    """A call item for each built-in tool offered (once each, in the order offered); ``at``
    is the position in the output of the first."""
    items: list[dict[str, Any]] = []
    ids = persona.ids
    done: set[Any] = set()
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        kind = "web_search" if kind in WEB_SEARCH_TOOLS else kind
        if kind in done:
            continue
        done.add(kind)
        i = at + len(items)
        if kind == "web_search":
            action: dict[str, Any] = {"type": "search", "query": question}
            if "web_search_call.action.sources" in include:
                action["sources"] = [{"type": "url", "url": _search_url(question)}]
            item_id = ids.web_search_call.format(key=key, i=i)
            items.append(
                {"id": item_id, "type": "web_search_call", "status": "completed", "action": action}
            )
        elif kind == "file_search":
            results = None
            if "file_search_call.results" in include:
                results = [
                    {
                        "attributes": {},
                        "file_id": persona.file_id,
                        "filename": CITED_FILENAME,
                        "score": persona.file_score,
                        "text": question,
                    }
                ]
            items.append(
                {
                    "id": ids.file_search_call.format(key=key, i=i),
                    "type": "file_search_call",
                    "status": "completed",
                    "queries": [question],
                    "results": results,
                }
            )
        elif kind == "code_interpreter":
            container = tool.get("container")
            outputs = None
            if "code_interpreter_call.outputs" in include:
                outputs = [{"type": "logs", "logs": question}]
            items.append(
                {
                    "id": ids.code_interpreter_call.format(key=key, i=i),
                    "type": "code_interpreter_call",
                    "status": "completed",
                    "code": f"print({json.dumps(question, ensure_ascii=False)})",
                    "container_id": container
                    if isinstance(container, str)
                    else ids.container.format(key=key),
                    "outputs": outputs,
                }
            )
    return items


def citations(
    persona: Persona, offered: set[Any], question: str, text: str
) -> list[dict[str, Any]]:
    """The annotations of an answer given with built-in tools: a URL citation of the question
    (after the persona's lead) for web search, a file citation for file search."""
    annotations: list[dict[str, Any]] = []
    if offered & WEB_SEARCH_TOOLS:
        start = len(persona.lead) if text.startswith(persona.lead) else 0
        annotations.append(
            {
                "type": "url_citation",
                "start_index": min(start, len(text)),
                "end_index": len(text),
                "title": f"Search result for: {question}",
                "url": _search_url(question),
            }
        )
    if "file_search" in offered:
        annotations.append(
            {
                "type": "file_citation",
                "file_id": persona.file_id,
                "filename": CITED_FILENAME,
                "index": len(text),
            }
        )
    return annotations


def _search_url(question: str) -> str:
    return f"https://example.test/{_SLUG_RE.sub('-', question.lower()).strip('-') or 'result'}"
