"""Requests read as a conversation, whichever API carried it: messages or input items as turns,
the question asked, and the tool results the conversation ends with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    """One step of a conversation."""

    kind: str  # "message", "call" (a function call), "result" (its output) or "other"
    role: str = ""
    text: str = ""  # message text, call arguments or result output
    name: str = ""  # the function a call calls
    call_id: str = ""


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or its text parts joined by spaces."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    return str(content)


def chat_turns(messages: Any) -> list[Turn]:
    """Chat Completions messages as turns (an assistant message's tool calls each a turn)."""
    turns = []
    for msg in messages if isinstance(messages, list) else []:
        if not isinstance(msg, dict):
            continue
        role = str(msg.get("role"))
        if role == "tool":
            text = content_text(msg.get("content"))
            turns.append(Turn("result", role, text, "", str(msg.get("tool_call_id"))))
            continue
        calls = msg.get("tool_calls")
        if msg.get("content") is not None or not calls:
            turns.append(Turn("message", role, content_text(msg.get("content"))))
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                arguments, name = str(function.get("arguments", "")), str(function.get("name", ""))
                turns.append(Turn("call", role, arguments, name, str(call.get("id"))))
    return turns


def item_turns(items: list[dict[str, Any]]) -> list[Turn]:
    """Responses API input items as turns."""
    turns = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            turns.append(Turn("message", str(item.get("role")), content_text(item.get("content"))))
        elif kind == "function_call":
            arguments, name = str(item.get("arguments", "")), str(item.get("name", ""))
            turns.append(Turn("call", "assistant", arguments, name, str(item.get("call_id"))))
        elif kind == "function_call_output":
            output = content_text(item.get("output"))
            turns.append(Turn("result", "tool", output, "", str(item.get("call_id"))))
        else:
            turns.append(Turn("other"))
    return turns


def question(turns: list[Turn]) -> str:
    """The text of the last user message."""
    for turn in reversed(turns):
        if turn.kind == "message" and turn.role == "user":
            return turn.text
    return ""


def asked(turns: list[Turn]) -> bool:
    """Whether the newest input is a user message (a question to answer, or call a tool for)."""
    return bool(turns) and turns[-1].kind == "message" and turns[-1].role == "user"


def latest_results(turns: list[Turn]) -> list[Turn]:
    """The tool results the conversation ends with (none unless its newest input is one)."""
    results: list[Turn] = []
    for turn in reversed(turns):
        if turn.kind != "result":
            break
        results.append(turn)
    return results[::-1]


def tool_said(turns: list[Turn]) -> str:
    """`` (tool <name> said: <output>)`` for each tool result the conversation ends with."""
    if not turns or turns[-1].kind != "result":
        return ""
    names = {turn.call_id: turn.name for turn in turns if turn.kind == "call"}
    return "".join(
        f" (tool {names.get(turn.call_id, 'unknown')} said: {turn.text})"
        for turn in latest_results(turns)
    )


def calls_since_question(turns: list[Turn]) -> int:
    """The function calls made since the last user message."""
    count = 0
    for turn in reversed(turns):
        if turn.kind == "message" and turn.role == "user":
            break
        count += turn.kind == "call"
    return count


def input_items(value: Any) -> list[dict[str, Any]]:
    """``input`` as items: a string is one user message; a message's string content becomes
    one text part (``output_text`` for the assistant's, else ``input_text``)."""
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


def as_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat messages a Responses context amounts to, for counting its tokens: messages,
    function calls (their arguments) and their outputs; other items count for nothing."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role") or ""
            messages.append({"role": role, "content": content_text(item.get("content"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": item.get("arguments", "")})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "content": content_text(item.get("output"))})
    return messages


def conversation_id(body: dict[str, Any]) -> Any:
    """The conversation a Responses request names (``"conv_..."`` or ``{"id": ...}``)."""
    conversation = body.get("conversation")
    return conversation.get("id") if isinstance(conversation, dict) else conversation
