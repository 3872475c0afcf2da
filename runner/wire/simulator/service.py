"""A simulated model behind the OpenAI wire protocol: a persona and what it keeps, answering
whole requests (Chat Completions, Responses, stored responses, conversations, models)."""

from __future__ import annotations

from typing import Any

from runner.wire.simulator.chat import ChatAnswer, include_usage
from runner.wire.simulator.decisions import Again
from runner.wire.simulator.dialogue import input_items
from runner.wire.simulator.errors import (
    UNPARSEABLE,
    Reply,
    chat_problem,
    context_problem,
    invalid_url,
    json_bytes,
    json_object,
    not_allowed,
    response_problem,
)
from runner.wire.simulator.exchange import Exchange
from runner.wire.simulator.persona import Persona
from runner.wire.simulator.state import Store


class Simulator:
    """One model: its :class:`Persona` and its :class:`Store`. :meth:`serve` answers a request
    as the API would; the parts it is made of (:meth:`chat_answer`, :meth:`response_problem`,
    :meth:`exchange`, ``store``) serve a server that wraps faults around them."""

    def __init__(self, persona: Persona) -> None:
        self.persona = persona
        self.store = Store(persona)

    def serve(
        self, method: str, path: str, query: str | bytes, raw: bytes, arrival: int = 0
    ) -> Reply:
        """Answer one request; ``path`` is the URL's path (what follows ``/v1/`` is read)."""
        parts = path.split("/v1/", 1)[-1].strip("/").split("/")
        if parts == ["chat", "completions"] or parts == ["responses"]:
            if method != "POST":
                return not_allowed(method)
            body = json_object(raw) if raw else None
            if body is None:
                return UNPARSEABLE
            if parts == ["responses"]:
                return self.create(body, raw, arrival)
            return self.chat(body, raw, arrival)
        if parts == ["models"] and method == "GET":
            return Reply(200, self.models())
        if parts[0] in ("responses", "conversations"):
            return self.store.route(method, parts, query, raw)
        return invalid_url(method, path)

    def models(self) -> bytes:
        """``GET /models``: the one model there is."""
        model = {"id": self.persona.model, "object": "model", "created": 0}
        return json_bytes({"object": "list", "data": [{**model, "owned_by": self.persona.name}]})

    def chat_answer(
        self,
        body: dict[str, Any],
        raw: bytes,
        arrival: int,
        *,
        refusal: str | None = None,
        n: int | None = None,
        calls: bool = True,
        again: Again | None = None,
    ) -> ChatAnswer:
        """The answer to a chat completion request (the options: see :class:`ChatAnswer`)."""
        key = self.persona.key(raw, None, arrival)
        return ChatAnswer(self.persona, body, key, refusal=refusal, n=n, calls=calls, again=again)

    def chat(self, body: dict[str, Any], raw: bytes, arrival: int) -> Reply:
        """``POST /chat/completions``."""
        problem = chat_problem(body)
        if problem is not None:
            return problem
        answer = self.chat_answer(body, raw, arrival)
        if body.get("stream"):
            return Reply(200, answer.stream(include_usage(body)), stream=True)
        return Reply(200, answer.whole())

    def response_problem(self, body: dict[str, Any]) -> Reply | None:
        """The error a Responses request gets before the model sees it, else None."""
        checked = self._checked(body)
        return checked if isinstance(checked, Reply) else None

    def _checked(
        self, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | Reply:
        """The context a Responses request continues and its input items, or the error it
        gets."""
        problem = response_problem(body)
        if problem is not None:
            return problem
        prior = self.store.prior(body)
        if isinstance(prior, Reply):
            return prior
        inputs = input_items(body.get("input"))
        problem = context_problem(prior + inputs)
        return (prior, inputs) if problem is None else problem

    def exchange(
        self,
        body: dict[str, Any],
        raw: bytes,
        arrival: int,
        *,
        refusal: str | None = None,
        calls: bool = True,
        again: Again | None = None,
        truncate: tuple[int, str] | None = None,
    ) -> Exchange:
        """A checked Responses request worked out, with what it continues (the options: see
        :class:`Exchange`); the store notes what the model saw."""
        prior = self.store.prior(body)
        assert not isinstance(prior, Reply), "check response_problem first"
        exchange = Exchange(
            self.persona,
            body,
            prior,
            raw,
            arrival,
            refusal=refusal,
            calls=calls,
            again=again,
            truncate=truncate,
        )
        self.store.saw(exchange)
        return exchange

    def create(self, body: dict[str, Any], raw: bytes, arrival: int) -> Reply:
        """``POST /responses``."""
        checked = self._checked(body)
        if isinstance(checked, Reply):
            return checked
        prior, inputs = checked
        exchange = Exchange(self.persona, body, prior, raw, arrival, inputs=inputs)
        self.store.saw(exchange)
        final = exchange.final(exchange.usage())
        self.store.commit(exchange, final["response"])
        if body.get("stream"):
            return Reply(200, exchange.stream(final), stream=True)
        return Reply(200, json_bytes(final["response"]))
