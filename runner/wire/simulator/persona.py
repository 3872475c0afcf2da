"""What sets one simulated model apart from another: the small policy the shared protocol asks
of it (its answer's wording, token counts, stream pieces and ids)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# (raw request body, the context a Responses request continues with or None for Chat
# Completions, the request's arrival number) -> the key its ids are made from.
KeyOf = Callable[[bytes, list[dict[str, Any]] | None, int], str]


@dataclass(frozen=True, slots=True)
class Ids:
    """How a model names what it makes: ``str.format`` templates of ``key`` (the persona's key
    for the request) and ``i`` (a choice, a position in the output, or a running count)."""

    completion: str  # a chat completion (key)
    chat_call: str  # a chat tool call (key, i: the choice)
    response: str  # a Response (key)
    function_call: str  # a function call item (key, i: its position in the output)
    call: str  # a function call's call_id (key, i: its position in the output)
    message: str  # a message item (key, i: its position in the output)
    web_search_call: str  # (key, i: position)
    file_search_call: str  # (key, i: position)
    code_interpreter_call: str  # (key, i: position)
    container: str  # a code interpreter's container when the tool names none (key)
    conversation: str  # (i: the running count of conversations and stored items)
    item: str  # an input item a conversation keeps (prefix: msg, fco or item; i: the count)


@dataclass(frozen=True, slots=True)
class Persona:
    """One model's policy; everything else about its answers is the protocol's.

    An answer is ``lead + question`` (plus what tools said), choice ``i > 0`` of ``n`` adds
    ``choice_note.format(i=i)``; ``cut`` trims a text to a token limit (None: it fits),
    ``pieces`` splits a text into the deltas it streams in, ``count_text`` and
    ``count_messages`` count completion and prompt tokens (a Responses context is counted as
    the chat messages it amounts to).
    """

    name: str  # who owns the model in GET /models
    model: str  # the model named when a request names none
    fingerprint: str  # system_fingerprint of chat completions
    lead: str  # what every answer says before the question
    choice_note: str  # appended to choice i > 0 of n (``{i}``), "" for the same answer
    finish_apart: bool  # a streamed answer's finish_reason comes in a chunk of its own
    file_id: str  # the file that file search finds and cites
    file_score: float  # file search's score for it
    ids: Ids
    key: KeyOf
    count_text: Callable[[str], int]
    count_messages: Callable[[list[Any]], int]
    cut: Callable[[str, int], str | None]
    pieces: Callable[[str], list[str]]
