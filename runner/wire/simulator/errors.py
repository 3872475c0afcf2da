"""Request validation, and error bodies worded as the OpenAI API words them."""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from runner.wire.simulator.dialogue import conversation_id

# JSON as the API sends it: compact, UTF-8 kept.
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_text(value: Any) -> str:
    """``value`` as the API's JSON (a string quickly)."""
    return encode_basestring(value) if type(value) is str else dumps(value)


def json_bytes(value: Any) -> bytes:
    """``value`` as the API's JSON, encoded."""
    return dumps(value).encode()


# What POST /responses accepts (the SDK's ResponseCreateParams, and ``stream``).
RESPONSE_PARAMS = frozenset(
    (
        "access_programs", "background", "background_options", "context_management",
        "conversation", "image", "include", "input", "instructions", "max_output_tokens",
        "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls",
        "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_options",
        "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store",
        "stream", "stream_options", "temperature", "text", "tool_choice", "tools",
        "top_logprobs", "top_p", "truncation", "user",
    )
)  # fmt: skip
# Request fields whose JSON type the API checks: (name, Python types, what the message says).
_SHAPES: list[tuple[str, type | tuple[type, ...], str]] = [
    ("input", (str, list), "one of a string or array of input items"),
    ("text", dict, "an object"),
    ("tools", list, "an array"),
    ("include", list, "an array"),
]
_JSON_TYPES: dict[type, str] = {str: "a string", dict: "an object", list: "an array"}
_JSON_TYPES.update({bool: "a boolean", int: "an integer", float: "a number"})


class Reply(NamedTuple):
    """An HTTP answer: its status, its body (JSON, or server-sent events when ``stream``)."""

    status: int
    body: bytes
    stream: bool = False


def error_body(
    message: str, type_: str = "invalid_request_error", code: str | None = None, param: Any = None
) -> bytes:
    """``{"error": {message, type, param, code}}``."""
    return json_bytes({"error": {"message": message, "type": type_, "param": param, "code": code}})


def api_error(status: int, message: str, code: str | None = None, param: Any = None) -> Reply:
    """An ``invalid_request_error``."""
    return Reply(status, error_body(message, "invalid_request_error", code, param))


UNPARSEABLE = Reply(400, error_body("We could not parse the JSON body of your request."))


def invalid_url(method: str, path: str) -> Reply:
    return api_error(404, f"Invalid URL ({method} {path})")


def not_allowed(method: str) -> Reply:
    return api_error(405, f"Method {method} not allowed")


def unsupported(param: str) -> Reply:
    return api_error(400, f"Unsupported parameter: '{param}'.", "unsupported_parameter", param)


def missing(param: str) -> Reply:
    message = f"Missing required parameter: '{param}'."
    return api_error(400, message, "missing_required_parameter", param)


def invalid_type(param: str, expected: str, value: Any) -> Reply:
    got = _JSON_TYPES.get(type(value), "another type")
    message = f"Invalid type for '{param}': expected {expected}, but got {got} instead."
    return api_error(400, message, "invalid_type", param)


def json_object(raw: bytes) -> dict[str, Any] | None:
    """A request body that is a JSON object (an empty body is ``{}``), else None."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def chat_problem(body: dict[str, Any]) -> Reply | None:
    """The 400 OpenAI answers a chat completion request with when its messages are missing,
    a tool is not nested under ``function``, or tool messages answer no call (or a call is
    left unanswered); else None."""
    messages = body.get("messages")
    if messages is None:
        return missing("messages")
    if not isinstance(messages, list):
        return invalid_type("messages", "an array", messages)
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        nested = isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        if isinstance(tool, dict) and tool.get("type", "function") == "function" and not nested:
            return missing(f"tools[{i}].function")
    unanswered: list[str] = []  # the calls of the last assistant message not answered yet
    calls: set[str] = set()
    asked_at = -1
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "tool":
            if asked_at < 0:
                message = (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."
                )
                return api_error(400, message, param=f"messages.[{i}].role")
            call_id = msg.get("tool_call_id")
            if call_id not in calls:
                message = (
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message."
                )
                return api_error(400, message, param=f"messages.[{i}].tool_call_id")
            if call_id in unanswered:
                unanswered.remove(call_id)
            continue
        if unanswered:
            break
        asked_at = -1
        tool_calls = msg.get("tool_calls") if isinstance(msg, dict) else None
        if role == "assistant" and isinstance(tool_calls, list) and tool_calls:
            unanswered = [str(c.get("id")) for c in tool_calls if isinstance(c, dict)]
            calls = set(unanswered)
            asked_at = i
    if unanswered:
        message = (
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(unanswered)
        )
        return api_error(400, message, param=f"messages.[{asked_at}].role")
    return None


def response_problem(body: dict[str, Any]) -> Reply | None:
    """The 400 for a Responses request that is wrong on its own: an unknown parameter, no
    model, a field of the wrong type, a function tool without a name, or both
    ``previous_response_id`` and ``conversation``; else None."""
    for key in body:
        if key not in RESPONSE_PARAMS:
            return unsupported(key)
    if not isinstance(body.get("model"), str):
        return missing("model")
    for param, kinds, expected in _SHAPES:
        if body.get(param) is not None and not isinstance(body[param], kinds):
            return invalid_type(param, expected, body[param])
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if isinstance(tool, dict) and tool.get("type") == "function" and "name" not in tool:
            return missing(f"tools[{i}].name")
    if body.get("previous_response_id") is not None and conversation_id(body) is not None:
        message = (
            "Mutually exclusive parameters: Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'."
        )
        return api_error(400, message, "mutually_exclusive_parameters")
    return None


def context_problem(context: list[dict[str, Any]]) -> Reply | None:
    """The 400 for a function call output without its call, or a call without its output."""
    calls = [i.get("call_id") for i in context if i.get("type") == "function_call"]
    outputs = [i.get("call_id") for i in context if i.get("type") == "function_call_output"]
    for call_id in outputs:
        if call_id not in calls:
            message = f"No tool call found for function call output with call_id {call_id}."
            return api_error(400, message, param="input")
    for call_id in calls:
        if call_id not in outputs:
            message = f"No tool output found for function call {call_id}."
            return api_error(400, message, param="input")
    return None
