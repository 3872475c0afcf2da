"""What a simulated server keeps between requests: stored responses (to fetch and to continue
with ``previous_response_id``), the items the model saw for each, and conversations and their
items; with the routes that read and write them."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from typing import Any

from runner.wire.simulator.dialogue import conversation_id, input_items
from runner.wire.simulator.errors import (
    UNPARSEABLE,
    Reply,
    api_error,
    dumps,
    invalid_url,
    json_bytes,
    json_object,
    unsupported,
)
from runner.wire.simulator.exchange import Exchange
from runner.wire.simulator.persona import Persona

_ITEM_PREFIXES = {"message": "msg", "function_call_output": "fco"}


def item_list(items: list[dict[str, Any]], has_more: bool) -> bytes:
    """A page of conversation items."""
    page = {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }
    return json_bytes(page)


class Store:
    """A server's responses and conversations; safe to use from several threads."""

    def __init__(self, persona: Persona) -> None:
        self.persona = persona
        self.lock = threading.Lock()
        self._responses: dict[str, dict[str, Any]] = {}
        self._contexts: dict[str, list[dict[str, Any]]] = {}  # what each response continues
        self._seen: dict[str, list[dict[str, Any]]] = {}  # what the model saw for each
        self._conversations: dict[str, dict[str, Any]] = {}
        self._items: dict[str, list[dict[str, Any]]] = {}  # each conversation's items
        self._count = 0  # conversations and stored items made so far

    def reset(self) -> None:
        """Forget every response and conversation."""
        with self.lock:
            for kept in (self._responses, self._contexts, self._seen):
                kept.clear()
            self._conversations.clear()
            self._items.clear()
            self._count = 0

    def context_of(self, response_id: str) -> list[dict[str, Any]]:
        """The items the model saw for a response (stored or not)."""
        with self.lock:
            if response_id not in self._seen:
                raise KeyError(f"no response {response_id!r} was made")
            return json.loads(dumps(self._seen[response_id]))

    def conversation_items(self, conversation: str) -> list[dict[str, Any]]:
        """A conversation's items, oldest first."""
        with self.lock:
            return json.loads(dumps(self._items[conversation]))

    def prior(self, body: dict[str, Any]) -> list[dict[str, Any]] | Reply:
        """The items a Responses request continues from, or the error naming what it refers
        to that is not there."""
        previous = body.get("previous_response_id")
        conversation = conversation_id(body)
        with self.lock:
            if previous is not None:
                if previous not in self._contexts:
                    message = f"Previous response with id '{previous}' not found."
                    code = "previous_response_not_found"
                    return api_error(400, message, code, "previous_response_id")
                return list(self._contexts[previous])
            if conversation is not None:
                if conversation not in self._conversations:
                    message = f"Conversation with id '{conversation}' not found."
                    return api_error(404, message, param="conversation")
                return list(self._items[conversation])
        return []

    def saw(self, exchange: Exchange) -> None:
        """Note what the model saw for a response."""
        with self.lock:
            self._seen[exchange.rid] = exchange.seen

    def commit(self, exchange: Exchange, response: dict[str, Any]) -> None:
        """Keep a finished response: for GET when stored, and, if it ended ``completed`` or
        ``incomplete``, to be continued from (stored) and in its conversation."""
        with self.lock:
            if response["store"]:
                self._responses[exchange.rid] = response
            if response["status"] not in ("completed", "incomplete"):
                return
            if response["store"]:
                self._contexts[exchange.rid] = exchange.context + response["output"]
            conversation = response["conversation"]
            if conversation is not None:
                items = self._items[conversation["id"]]
                items += [self._stored(item) for item in exchange.input]
                items += response["output"]

    def _stored(self, item: dict[str, Any]) -> dict[str, Any]:
        """An input item as a conversation keeps it: with an id and a status (call with the
        lock held)."""
        stored = dict(item)
        kind = stored.get("type")
        if "id" not in stored:
            self._count += 1
            prefix = _ITEM_PREFIXES.get(str(kind), "item")
            stored["id"] = self.persona.ids.item.format(prefix=prefix, i=self._count)
        if kind in ("message", "function_call", "function_call_output"):
            stored.setdefault("status", "completed")
        return stored

    def route(self, method: str, parts: list[str], query: str | bytes, raw: bytes) -> Reply:
        """``GET /responses/{id}`` and the conversation routes (``parts``: the path after
        ``/v1/``): (status, JSON body)."""
        body = json_object(raw)
        if body is None:
            return UNPARSEABLE
        with self.lock:
            if parts[0] == "responses" and len(parts) == 2 and method == "GET":
                response = self._responses.get(parts[1])
                if response is None:
                    return api_error(404, f"Response with id '{parts[1]}' not found.")
                return Reply(200, json_bytes(response))
            if parts == ["conversations"] and method == "POST":
                return self._create_conversation(body)
            if len(parts) >= 2 and parts[0] == "conversations":
                found = self._conversation(method, parts, query, body)
                if found is not None:
                    return found
        return invalid_url(method, "/v1/" + "/".join(parts))

    def _create_conversation(self, body: dict[str, Any]) -> Reply:
        for key in body:
            if key not in ("items", "metadata"):
                return unsupported(key)
        self._count += 1
        cid = self.persona.ids.conversation.format(i=self._count)
        conversation = {
            "id": cid,
            "object": "conversation",
            "created_at": int(time.time()),
            "metadata": body.get("metadata") or {},
        }
        self._conversations[cid] = conversation
        self._items[cid] = [self._stored(item) for item in input_items(body.get("items"))]
        return Reply(200, json_bytes(conversation))

    def _conversation(
        self, method: str, parts: list[str], query: str | bytes, body: dict[str, Any]
    ) -> Reply | None:
        conversation = self._conversations.get(parts[1])
        if conversation is None:
            return api_error(404, f"Conversation with id '{parts[1]}' not found.")
        items = self._items[parts[1]]
        if len(parts) == 2 and method == "GET":
            return Reply(200, json_bytes(conversation))
        if parts[2:] == ["items"] and method == "POST":
            added = [self._stored(item) for item in input_items(body.get("items"))]
            items += added
            return Reply(200, item_list(added, has_more=False))
        if parts[2:] == ["items"] and method == "GET":
            text = query.decode() if isinstance(query, bytes) else query
            params = urllib.parse.parse_qs(text)
            order = params.get("order", ["desc"])[0]
            limit = int(params.get("limit", ["20"])[0])
            listed = items if order == "asc" else items[::-1]
            after = params.get("after", [None])[0]
            if after is not None:
                ids = [item["id"] for item in listed]
                listed = listed[ids.index(after) + 1 :] if after in ids else []
            return Reply(200, item_list(listed[:limit], has_more=len(listed) > limit))
        return None
