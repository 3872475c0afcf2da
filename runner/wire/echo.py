"""The offline ``echo`` model: an in-process transport that speaks the OpenAI wire format.

Requests go through the real openai SDK (streaming, usage chunk and all) to the protocol
simulator (:mod:`runner.wire.simulator`) with the echo persona: the answer is the last user
message, word by word, cut at its first stop sequence and at the request's token limit
(tiktoken's ``o200k_base`` tokens, counted as the OpenAI cookbook does). No network, no API
key, fully deterministic: ids are digests of the request, the same on every run.

It speaks Chat Completions and the Responses API (``/responses``, streamed as the SDK's typed
events or not), and keeps server-side state per transport: stored responses
(``previous_response_id``, ``GET /responses/{id}``) and conversations (``/conversations`` and
their items). Function tools work on both APIs: given a new question and function tools, the
model calls the first (or the one ``tool_choice`` names) with each required argument the
question (strings), 1 (numbers) or true (booleans); given the tool's output it answers
``<question> (tool <name> said: <output>)``. Offered built-in tools (web search, file search,
code interpreter) give their call items and citations. A ``json_schema`` format gets a JSON
object giving each required property a value of its type (strings: the question).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx2

from runner.wire.simulator import Ids, Persona, Simulator
from runner.wire.tokens import get_counter

ECHO_BASE_URL = "http://echo.invalid/v1"
FINGERPRINT = "fp_echo_offline"
ENCODING = "o200k_base"


def echo_transport() -> EchoTransport:
    """A transport for ``httpx2.Client``/``AsyncClient`` that answers like the OpenAI API."""
    return EchoTransport()


class EchoTransport(httpx2.MockTransport):
    """The echo model behind a transport; it keeps its own stored responses and conversations."""

    def __init__(self) -> None:
        self._simulator = Simulator(ECHO)
        super().__init__(self._handle)

    def context_of(self, response_id: str) -> list[dict[str, Any]]:
        """The items the model saw for a response: its instructions as a developer message,
        the context it continued from, then the request's input items."""
        return self._simulator.store.context_of(response_id)

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        reply = self._simulator.serve(
            request.method, request.url.path, request.url.query, request.content
        )
        kind = "text/event-stream" if reply.stream else "application/json"
        return httpx2.Response(reply.status, headers={"content-type": kind}, content=reply.body)


def _key(raw: bytes, context: list[dict[str, Any]] | None, arrival: int) -> str:
    """A digest of the request (and of the context a response continues)."""
    data = raw if context is None else raw + json.dumps(context).encode()
    return hashlib.sha256(data).hexdigest()


def _count_text(text: str) -> int:
    return get_counter(ENCODING).count_text(text) if text else 0


def _count_messages(messages: list[Any]) -> int:
    return get_counter(ENCODING).count_messages(messages)


def _cut(text: str, limit: int) -> str | None:
    """``text``'s leading words within ``limit`` tokens, or None when it all fits."""
    counter = get_counter(ENCODING)
    words: list[str] = []
    used = 0
    for word in text.split(" "):
        used += counter.count_text(word + " ")
        if used > limit:
            return " ".join(words)
        words.append(word)
    return None


def _pieces(text: str) -> list[str]:
    """``text`` word by word, each piece keeping its following space."""
    pieces = [w + " " for w in text.split(" ")]
    pieces[-1] = pieces[-1][:-1]
    return [p for p in pieces if p]


ECHO = Persona(
    name="echo",
    model="echo",
    fingerprint=FINGERPRINT,
    lead="",
    choice_note="",
    finish_apart=True,
    file_id="file-echo0001",
    file_score=1.0,
    ids=Ids(
        completion="chatcmpl-echo-{key:.16}",
        chat_call="call_{key:.24}{i}",
        response="resp_{key:.40}",
        function_call="fc_{key:.40}",
        call="call_{key:.24}",
        message="msg_{key:.40}{i}",
        web_search_call="ws_{key:.40}",
        file_search_call="fs_{key:.40}",
        code_interpreter_call="ci_{key:.40}",
        container="cntr_{key:.40}",
        conversation="conv_echo{i:06d}",
        item="{prefix}_echo{i:06d}",
    ),
    key=_key,
    count_text=_count_text,
    count_messages=_count_messages,
    cut=_cut,
    pieces=_pieces,
)
