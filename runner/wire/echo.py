"""The offline ``echo`` model: an in-process transport that speaks the OpenAI wire format.

Requests go through the real openai SDK (streaming, usage chunk and all) to a handler that
answers with the last user message, word by word, truncated at the request's token limit
and cut at its first stop sequence. No network, no API key, fully deterministic.

It speaks Chat Completions and the Responses API (``/responses``, streamed as the SDK's typed
events or not), and keeps server-side state per transport: stored responses
(``previous_response_id``, ``GET /responses/{id}``) and conversations (``/conversations`` and
their items). Function tools work on both APIs: given a new question and function tools, the
model calls the first (or the one ``tool_choice`` names) with each required argument the
question (strings), 1 (numbers) or true (booleans); given the tool's output it answers
``<question> (tool <name> said: <output>)``. Offered built-in tools (web search, file search,
code interpreter) give their call items and citations. A ``json_schema`` text format gets a
JSON object giving each required property a value of its type (strings: the question).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

import httpx2

from runner.wire.tokens import get_counter

ECHO_BASE_URL = "http://echo.invalid/v1"
FINGERPRINT = "fp_echo_offline"
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
WEB_SEARCH_TOOLS = frozenset(
    {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
)
CITED_FILE_ID = "file-echo0001"
CITED_FILENAME = "notes.md"
_SLUG_RE = re.compile(r"[^a-z0-9]+")
# Request fields whose JSON type the API checks: (name, Python types, what the message says).
_SHAPES: list[tuple[str, type | tuple[type, ...], str]] = [
    ("input", (str, list), "one of a string or array of input items"),
    ("text", dict, "an object"),
    ("tools", list, "an array"),
    ("include", list, "an array"),
]
_JSON_TYPES: dict[type, str] = {str: "a string", dict: "an object", list: "an array"}
_JSON_TYPES.update({bool: "a boolean", int: "an integer", float: "a number"})


def echo_transport() -> EchoTransport:
    """A transport for ``httpx2.Client``/``AsyncClient`` that answers like the OpenAI API."""
    return EchoTransport()


class EchoTransport(httpx2.MockTransport):
    """The echo model behind a transport; it keeps its own stored responses and conversations."""

    def __init__(self) -> None:
        self._responses: dict[str, dict[str, Any]] = {}
        self._contexts: dict[str, list[dict[str, Any]]] = {}  # what each response continues
        self._seen: dict[str, list[dict[str, Any]]] = {}  # what the model saw for each
        self._conversations: dict[str, dict[str, Any]] = {}
        self._items: dict[str, list[dict[str, Any]]] = {}  # each conversation's items
        self._count = 0
        super().__init__(self._handle)

    def context_of(self, response_id: str) -> list[dict[str, Any]]:
        """The items the model saw for a response: its instructions as a developer message,
        the context it continued from, then the request's input items."""
        return json.loads(json.dumps(self._seen[response_id]))

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path.endswith("/chat/completions"):
            return _chat(request)
        parts = path.split("/v1/", 1)[-1].strip("/").split("/")
        if parts[0] not in ("responses", "conversations"):
            return _error(
                404,
                f"the echo model serves /chat/completions, /responses and /conversations, "
                f"not {path}",
            )
        try:
            body = json.loads(request.content) if request.content else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        method = request.method
        if parts == ["responses"] and method == "POST":
            return self._create(body, request.content)
        if parts[0] == "responses" and len(parts) == 2 and method == "GET":
            if parts[1] not in self._responses:
                return _api_error(404, f"Response with id '{parts[1]}' not found.")
            return httpx2.Response(200, json=self._responses[parts[1]])
        if parts == ["conversations"] and method == "POST":
            unknown = [key for key in body if key not in ("items", "metadata")]
            if unknown:
                return _unsupported(unknown[0])
            self._count += 1
            cid = f"conv_echo{self._count:06d}"
            conversation = {
                "id": cid,
                "object": "conversation",
                "created_at": int(time.time()),
                "metadata": body.get("metadata") or {},
            }
            self._conversations[cid] = conversation
            self._items[cid] = [self._stored(i) for i in _items(body.get("items"))]
            return httpx2.Response(200, json=conversation)
        if parts[0] == "conversations" and len(parts) in (2, 3):
            return self._conversation(method, parts, body, request.url.params)
        return _error(404, f"the echo model does not serve {method} {path}")

    def _conversation(
        self, method: str, parts: list[str], body: dict[str, Any], params: Any
    ) -> httpx2.Response:
        if parts[1] not in self._conversations:
            return _api_error(404, f"Conversation with id '{parts[1]}' not found.")
        items = self._items[parts[1]]
        if len(parts) == 2 and method == "GET":
            return httpx2.Response(200, json=self._conversations[parts[1]])
        if parts[2] == "items" and method == "POST":
            added = [self._stored(item) for item in _items(body.get("items"))]
            items += added
            return httpx2.Response(200, json=_item_list(added, False))
        if parts[2] == "items" and method == "GET":
            listed = items if params.get("order", "desc") == "asc" else items[::-1]
            after = params.get("after")
            if after is not None:
                ids = [item["id"] for item in listed]
                listed = listed[ids.index(after) + 1 :] if after in ids else []
            limit = int(params.get("limit", 20))
            return httpx2.Response(200, json=_item_list(listed[:limit], len(listed) > limit))
        return _error(404, f"the echo model does not serve {method} /conversations/{parts[1]}")

    def _stored(self, item: dict[str, Any]) -> dict[str, Any]:
        """An input item as a conversation keeps it: with an id and a status."""
        stored = dict(item)
        if "id" not in stored:
            self._count += 1
            prefix = {"message": "msg", "function_call_output": "fco"}.get(
                str(stored.get("type")), "item"
            )
            stored["id"] = f"{prefix}_echo{self._count:06d}"
        if stored.get("type") in ("message", "function_call", "function_call_output"):
            stored.setdefault("status", "completed")
        return stored

    def _prior(self, body: dict[str, Any]) -> list[dict[str, Any]] | httpx2.Response:
        """The items a request continues from, or the error naming what it refers to."""
        previous = body.get("previous_response_id")
        conversation = _conversation_id(body)
        if previous is not None and conversation is not None:
            return _api_error(
                400,
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                "mutually_exclusive_parameters",
            )
        if previous is not None:
            if previous not in self._contexts:
                return _api_error(
                    400,
                    f"Previous response with id '{previous}' not found.",
                    "previous_response_not_found",
                    "previous_response_id",
                )
            return list(self._contexts[previous])
        if conversation is not None:
            if conversation not in self._conversations:
                message = f"Conversation with id '{conversation}' not found."
                return _api_error(404, message, param="conversation")
            return list(self._items[conversation])
        return []

    def _create(self, body: dict[str, Any], raw: bytes) -> httpx2.Response:
        for key in body:
            if key not in RESPONSE_PARAMS:
                return _unsupported(key)
        if not isinstance(body.get("model"), str):
            return _missing("model")
        for param, kinds, expected in _SHAPES:
            if body.get(param) is not None and not isinstance(body[param], kinds):
                got = _JSON_TYPES.get(type(body[param]), "another type")
                message = f"Invalid type for '{param}': expected {expected}, but got {got} instead."
                return _api_error(400, message, "invalid_type", param)
        tools = body.get("tools")
        for i, tool in enumerate(tools if isinstance(tools, list) else []):
            if isinstance(tool, dict) and tool.get("type") == "function" and "name" not in tool:
                return _missing(f"tools[{i}].name")
        prior = self._prior(body)
        if isinstance(prior, httpx2.Response):
            return prior
        inputs = _items(body.get("input"))
        context = prior + inputs
        problem = _unanswered(context)
        if problem is not None:
            return problem
        reply = _Reply(body, context, raw)
        self._seen[reply.rid] = reply.seen
        store = body.get("store", True) is not False
        final = reply.response(reply.status, reply.output, reply.usage)
        if store:
            self._responses[reply.rid] = final
            self._contexts[reply.rid] = context + reply.output
        conversation = _conversation_id(body)
        if conversation is not None:
            self._items[conversation] += [self._stored(item) for item in inputs] + reply.output
        if not body.get("stream"):
            return httpx2.Response(200, json=final)
        events = [*reply.events(), {"type": f"response.{reply.status}", "response": final}]
        sse = "".join(
            f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': i})}\n\n"
            for i, e in enumerate(events)
        )
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=sse.encode("utf-8")
        )


def echo_reply(body: dict[str, Any]) -> tuple[str, str]:
    """The answer text and finish reason the echo model gives for a request body."""
    question = next(
        (m.get("content") or "" for m in reversed(body.get("messages", [])) if m["role"] == "user"),
        "",
    )
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return json.dumps(_value(schema, question), ensure_ascii=False), "stop"
    question += _tool_said(_chat_turns(body.get("messages", [])))
    for stop in body.get("stop") or []:
        if stop and stop in question:
            return question[: question.index(stop)], "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is None:
        return question, "stop"
    cut = _cut_to_tokens(question, limit)
    return (question, "stop") if cut is None else (cut, "length")


def _cut_to_tokens(text: str, limit: int) -> str | None:
    """``text``'s leading words within ``limit`` tokens, or None when it all fits."""
    counter = get_counter("o200k_base")
    words: list[str] = []
    used = 0
    for word in text.split(" "):
        used += counter.count_text(word + " ")
        if used > limit:
            return " ".join(words)
        words.append(word)
    return None


def _word_pieces(text: str) -> list[str]:
    """``text`` word by word, each piece keeping its following space."""
    pieces = [w + " " for w in text.split(" ")]
    pieces[-1] = pieces[-1][:-1]
    return [p for p in pieces if p]


def _halves(text: str) -> list[str]:
    return [text[: len(text) // 2], text[len(text) // 2 :]] if len(text) > 1 else [text]


# ------------------------------------------------------------------ Chat Completions


def _chat(request: httpx2.Request) -> httpx2.Response:
    try:
        body = json.loads(request.content)
        messages = body["messages"]
    except (ValueError, KeyError):
        return _error(400, "request body must be JSON with a 'messages' list")
    problem = _chat_problem(body)
    if problem is not None:
        return problem
    digest = hashlib.sha256(request.content).hexdigest()
    call = _chat_call(body)
    answer, finish = echo_reply(body) if call is None else (call[1], "tool_calls")
    n = body.get("n") or 1
    counter = get_counter("o200k_base")
    prompt_tokens = counter.count_messages(messages)
    completion_tokens = n * (counter.count_text(answer) if answer else 0)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    rid = "chatcmpl-echo-" + digest[:16]
    base = {
        "id": rid,
        "created": int(time.time()),
        "model": body.get("model", "echo"),
        "system_fingerprint": FINGERPRINT,
    }

    def tool_call(i: int, arguments: str) -> dict[str, Any]:
        assert call is not None
        function = {"name": call[0], "arguments": arguments}
        return {"id": f"call_{digest[:24]}{i}", "type": "function", "function": function}

    if not body.get("stream"):
        choices = []
        for i in range(n):
            message: dict[str, Any] = {"role": "assistant", "content": answer}
            if call is not None:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [tool_call(i, answer)],
                }
            choices.append({"index": i, "message": message, "finish_reason": finish})
        return httpx2.Response(
            200,
            json={**base, "object": "chat.completion", "usage": usage, "choices": choices},
        )
    chunk = {**base, "object": "chat.completion.chunk"}
    events: list[dict[str, Any]] = []
    for i in range(n):  # with n > 1 every choice is the same answer, streamed in turn
        if call is None:
            role: dict[str, Any] = {"role": "assistant", "content": ""}
            deltas: list[dict[str, Any]] = [{"content": p} for p in _word_pieces(answer)]
        else:  # as OpenAI streams a call: named first, its arguments after
            role = {"role": "assistant", "content": None, "tool_calls": [tool_call(i, "")]}
            role["tool_calls"][0]["index"] = 0
            deltas = [
                {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}
                for p in _halves(answer)
            ]
        events.append({**chunk, "choices": [{"index": i, "delta": role, "finish_reason": None}]})
        events += [
            {**chunk, "choices": [{"index": i, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        events.append({**chunk, "choices": [{"index": i, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk, "choices": [], "usage": usage})
    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=sse.encode("utf-8")
    )


def _chat_problem(body: dict[str, Any]) -> httpx2.Response | None:
    """The 400 OpenAI answers malformed tools or tool messages with, else None."""
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        nested = isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        if isinstance(tool, dict) and tool.get("type", "function") == "function" and not nested:
            return _missing(f"tools[{i}].function")
    unanswered: list[str] = []  # the calls of the last assistant message not answered yet
    calls: list[str] = []
    asked_at = -1
    for i, message in enumerate(body["messages"]):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if asked_at < 0:
                return _api_error(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            call_id = message.get("tool_call_id")
            if call_id not in calls:
                return _api_error(
                    400,
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message.",
                    param=f"messages.[{i}].tool_call_id",
                )
            if call_id in unanswered:
                unanswered.remove(call_id)
            continue
        if unanswered:
            break
        asked_at = -1
        if role == "assistant" and message.get("tool_calls"):
            calls = [str(c.get("id")) for c in message["tool_calls"] if isinstance(c, dict)]
            unanswered, asked_at = list(calls), i
    if unanswered:
        return _api_error(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(unanswered),
            param=f"messages.[{asked_at}].role",
        )
    return None


def _chat_call(body: dict[str, Any]) -> tuple[str, str] | None:
    """(function name, arguments) when the model calls a function, else None."""
    offered = body.get("tools")
    tools = [
        t["function"]
        for t in (offered if isinstance(offered, list) else [])
        if isinstance(t, dict) and t.get("type") == "function"
    ]
    turns = _chat_turns(body["messages"])
    tool = _chosen_tool(tools, body.get("tool_choice"))
    if tool is None or not _asked(turns):
        return None
    return tool["name"], _arguments(tool, _question(turns))


# ------------------------------------------------------------------ the model's decisions
# A conversation as turns, whichever API carried it: (kind, role, text, name, call_id), kind
# being "message", "call" (text: its arguments), "result" (text: its output) or "other".
Turn = tuple[str, str, str, str, str]


def _chat_turns(messages: list[Any]) -> list[Turn]:
    turns: list[Turn] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        if m.get("role") == "tool":
            turns.append(
                ("result", "tool", _text(m.get("content")), "", str(m.get("tool_call_id")))
            )
            continue
        if m.get("content") is not None or not m.get("tool_calls"):
            turns.append(("message", str(m.get("role")), _text(m.get("content")), "", ""))
        for call in m.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            arguments, name = str(function.get("arguments", "")), str(function.get("name", ""))
            turns.append(("call", "assistant", arguments, name, str(call.get("id"))))
    return turns


def _item_turns(items: list[dict[str, Any]]) -> list[Turn]:
    turns: list[Turn] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            turns.append(("message", str(item.get("role")), _text(item.get("content")), "", ""))
        elif kind == "function_call":
            arguments, name = str(item.get("arguments", "")), str(item.get("name", ""))
            turns.append(("call", "assistant", arguments, name, str(item.get("call_id"))))
        elif kind == "function_call_output":
            turns.append(
                ("result", "tool", _text(item.get("output")), "", str(item.get("call_id")))
            )
        else:
            turns.append(("other", "", "", "", ""))
    return turns


def _text(content: Any) -> str:
    """The text of a message's content: a string, or its text parts joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _question(turns: list[Turn]) -> str:
    return next((t[2] for t in reversed(turns) if t[0] == "message" and t[1] == "user"), "")


def _asked(turns: list[Turn]) -> bool:
    """Whether the newest input is a user message (a question to answer, or call a tool for)."""
    return bool(turns) and turns[-1][0] == "message" and turns[-1][1] == "user"


def _tool_said(turns: list[Turn]) -> str:
    """`` (tool <name> said: <output>)`` for each tool result the conversation ends with."""
    names = {t[4]: t[3] for t in turns if t[0] == "call"}
    results: list[Turn] = []
    for turn in reversed(turns):
        if turn[0] != "result":
            break
        results.insert(0, turn)
    return "".join(f" (tool {names.get(t[4], 'unknown')} said: {t[2]})" for t in results)


def _chosen_tool(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any] | None:
    """The function the model calls: the one ``tool_choice`` names, else the first."""
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        function = choice.get("function")
        name = choice.get("name") or (function.get("name") if isinstance(function, dict) else None)
        return next((t for t in tools if t.get("name") == name), tools[0])
    return tools[0]


def _value(schema: Any, text: str) -> Any:
    """A value of the type ``schema`` asks for: ``text`` for strings, 1, true, [], or an
    object giving each required property a value."""
    if not isinstance(schema, dict):
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {key: _value(properties.get(key), text) for key in schema.get("required") or []}
    simple: dict[Any, Any] = {"integer": 1, "number": 1, "boolean": True, "array": [], "null": None}
    return simple.get(kind, text)


def _arguments(tool: dict[str, Any], question: str) -> str:
    parameters = tool.get("parameters")
    value = _value(parameters if isinstance(parameters, dict) else {"type": "object"}, question)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------ Responses API


def _items(value: Any) -> list[dict[str, Any]]:
    """``input`` as items: a string is one user message; a string content one text part."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items = []
    for raw in value if isinstance(value, list) else []:
        if not isinstance(raw, dict):
            continue
        item = dict(raw)
        if "role" in item and item.get("type", "message") == "message":
            item["type"] = "message"
            if isinstance(item.get("content"), str):
                part = "output_text" if item["role"] == "assistant" else "input_text"
                item["content"] = [{"type": part, "text": item["content"]}]
        items.append(item)
    return items


def _conversation_id(body: dict[str, Any]) -> str | None:
    conversation = body.get("conversation")
    return conversation.get("id") if isinstance(conversation, dict) else conversation


def _unanswered(context: list[dict[str, Any]]) -> httpx2.Response | None:
    """The 400 for a function call output without its call, or a call without its output."""
    calls = [i.get("call_id") for i in context if i.get("type") == "function_call"]
    outputs = [i.get("call_id") for i in context if i.get("type") == "function_call_output"]
    for call_id in outputs:
        if call_id not in calls:
            message = f"No tool call found for function call output with call_id {call_id}."
            return _api_error(400, message, param="input")
    for call_id in calls:
        if call_id not in outputs:
            return _api_error(
                400, f"No tool output found for function call {call_id}.", param="input"
            )
    return None


class _Reply:
    """The echo model's answer to one Responses request: output items, status and usage."""

    def __init__(self, body: dict[str, Any], context: list[dict[str, Any]], raw: bytes) -> None:
        self.body = body
        digest = hashlib.sha256(raw + json.dumps(context).encode()).hexdigest()
        self.rid = f"resp_{digest[:40]}"
        self.created_at = int(time.time())
        instructions = body.get("instructions")
        lead = _items([{"role": "developer", "content": instructions}]) if instructions else []
        self.seen = lead + context
        counter = get_counter("o200k_base")
        self.status, self.reason = "completed", None
        self.output: list[dict[str, Any]] = []
        self.pieces: list[str] = []

        turns = _item_turns(context)
        question = _question(turns)
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        functions = [t for t in tools if t.get("type") == "function"]
        choice = body.get("tool_choice")
        tool = _chosen_tool(functions, choice)
        if tool is not None and _asked(turns):
            arguments = _arguments(tool, question)
            self.output.append(
                {
                    "id": f"fc_{digest[:40]}",
                    "type": "function_call",
                    "status": "completed",
                    "arguments": arguments,
                    "call_id": f"call_{digest[:24]}",
                    "name": tool["name"],
                }
            )
            self.pieces = _halves(arguments)
            self._count(counter, arguments)
            return
        offered = {t.get("type") for t in tools} if choice != "none" else set()
        self._builtin_calls(tools if offered else [], question, digest)
        text_config = body.get("text")
        text_format = text_config.get("format") if isinstance(text_config, dict) else None
        if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
            text = json.dumps(_value(text_format.get("schema"), question), ensure_ascii=False)
        else:
            text = question + _tool_said(turns)
        limit = body.get("max_output_tokens")
        cut = _cut_to_tokens(text, limit) if isinstance(limit, int) else None
        if cut is not None:
            text, self.status, self.reason = cut, "incomplete", "max_output_tokens"
        self.pieces = _word_pieces(text)
        annotations: list[dict[str, Any]] = []
        if offered & WEB_SEARCH_TOOLS:
            slug = _SLUG_RE.sub("-", question.lower()).strip("-") or "result"
            annotations.append(
                {
                    "type": "url_citation",
                    "start_index": 0,
                    "end_index": len(text),
                    "title": f"Search result for: {question}",
                    "url": f"https://example.test/{slug}",
                }
            )
        if "file_search" in offered:
            annotations.append(
                {
                    "type": "file_citation",
                    "file_id": CITED_FILE_ID,
                    "filename": CITED_FILENAME,
                    "index": len(text),
                }
            )
        part = {"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}
        self.output.append(
            {
                "id": f"msg_{digest[:40]}{len(self.output)}",
                "type": "message",
                "status": self.status,
                "content": [part],
                "role": "assistant",
            }
        )
        self._count(counter, text)

    def _count(self, counter: Any, answer: str) -> None:
        messages = []
        for item in self.seen:
            kind = item.get("type")
            if kind == "message":
                messages.append({"role": item["role"], "content": _text(item.get("content"))})
            elif kind == "function_call":
                messages.append({"role": "assistant", "content": item.get("arguments", "")})
            elif kind == "function_call_output":
                messages.append({"role": "tool", "content": _text(item.get("output"))})
        input_tokens = counter.count_messages(messages)
        output_tokens = counter.count_text(answer) if answer else 0
        self.usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }

    def _builtin_calls(self, tools: list[dict[str, Any]], question: str, digest: str) -> None:
        """A call item for each built-in tool offered (once each, in the order offered)."""
        include = self.body.get("include") or []
        done: set[str] = set()
        for tool in tools:
            kind = "web_search" if tool.get("type") in WEB_SEARCH_TOOLS else tool.get("type")
            if kind in done:
                continue
            done.add(str(kind))
            item: dict[str, Any] = {"id": "", "type": f"{kind}_call", "status": "completed"}
            if kind == "web_search":
                item["id"] = f"ws_{digest[:40]}"
                item["action"] = {"type": "search", "query": question}
            elif kind == "file_search":
                result = {
                    "attributes": {},
                    "file_id": CITED_FILE_ID,
                    "filename": CITED_FILENAME,
                    "score": 1.0,
                    "text": question,
                }
                item["id"] = f"fs_{digest[:40]}"
                item["queries"] = [question]
                item["results"] = [result] if "file_search_call.results" in include else None
            elif kind == "code_interpreter":
                container = tool.get("container")
                logs = [{"type": "logs", "logs": question}]
                item["id"] = f"ci_{digest[:40]}"
                item["code"] = f"print({json.dumps(question, ensure_ascii=False)})"
                item["container_id"] = (
                    container if isinstance(container, str) else f"cntr_{digest[:40]}"
                )
                item["outputs"] = logs if "code_interpreter_call.outputs" in include else None
            else:
                continue
            self.output.append(item)

    def response(
        self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The Response object in a given state."""
        body = self.body
        conversation = _conversation_id(body)
        return {
            "id": self.rid,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "completed_at": self.created_at if status == "completed" else None,
            "conversation": {"id": conversation} if conversation else None,
            "error": None,
            "incomplete_details": {"reason": self.reason} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True) is not False,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium", **(body.get("text") or {})},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def events(self) -> list[dict[str, Any]]:
        """The stream's events but the last, without sequence numbers."""
        started = self.response("in_progress", [], None)
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
        ]
        for index, item in enumerate(self.output):
            at = {"item_id": item["id"], "output_index": index}
            added: dict[str, Any] = {**item, "status": "in_progress"}
            if item["type"] == "message":
                added["content"] = []
            elif item["type"] == "function_call":
                added["arguments"] = ""
            events.append(
                {"type": "response.output_item.added", "output_index": index, "item": added}
            )
            if item["type"] == "message":
                part = item["content"][0]
                empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                text = {**at, "content_index": 0}
                events.append({"type": "response.content_part.added", **text, "part": empty})
                events += [
                    {"type": "response.output_text.delta", **text, "delta": p, "logprobs": []}
                    for p in self.pieces
                ]
                events += [
                    {
                        "type": "response.output_text.annotation.added",
                        **text,
                        "annotation_index": j,
                        "annotation": annotation,
                    }
                    for j, annotation in enumerate(part["annotations"])
                ]
                events.append(
                    {
                        "type": "response.output_text.done",
                        **text,
                        "text": part["text"],
                        "logprobs": [],
                    }
                )
                events.append({"type": "response.content_part.done", **text, "part": part})
            elif item["type"] == "function_call":
                events += [
                    {"type": "response.function_call_arguments.delta", **at, "delta": p}
                    for p in self.pieces
                ]
                events.append(
                    {
                        "type": "response.function_call_arguments.done",
                        **at,
                        "arguments": item["arguments"],
                    }
                )
            events.append(
                {"type": "response.output_item.done", "output_index": index, "item": item}
            )
        return events


def _item_list(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def _error(status: int, message: str) -> httpx2.Response:
    return httpx2.Response(
        status, json={"error": {"message": message, "type": "invalid_request_error", "code": None}}
    )


def _api_error(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> httpx2.Response:
    """An error as the OpenAI API words it (type, param and code)."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return httpx2.Response(status, json={"error": error})


def _unsupported(param: str) -> httpx2.Response:
    return _api_error(400, f"Unsupported parameter: '{param}'.", "unsupported_parameter", param)


def _missing(param: str) -> httpx2.Response:
    message = f"Missing required parameter: '{param}'."
    return _api_error(400, message, "missing_required_parameter", param)
