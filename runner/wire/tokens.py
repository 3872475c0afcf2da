"""Token counting for chat messages, by the OpenAI cookbook's rules.

Each message costs its content's tokens plus 3 (plus 1 for a ``name``); a reply is primed
with 3 more. The encoding is a per-model config value. Without tiktoken's encoding files
(an offline machine with no ``TIKTOKEN_CACHE_DIR``), counts fall back to an approximation,
a warning is logged once, and ``method`` says so, so every record can carry it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
APPROXIMATE = "approximate"
_warned: set[str] = set()


class TokenCounter:
    """Counts tokens with one tiktoken encoding; each distinct message is encoded once."""

    def __init__(self, encoding: str = "o200k_base") -> None:
        self.encoding_name = encoding
        self._encode = _load_encoder(encoding)
        self.method = encoding if self._encode is not None else APPROXIMATE
        self.count_text = lru_cache(maxsize=65536)(self._count_text)
        self._message_cache: dict[tuple[str, str, str | None], int] = {}

    def _count_text(self, text: str) -> int:
        if self._encode is None:
            # ~4 bytes a token for English text under o200k/cl100k; errs high for CJK.
            return math.ceil(len(text.encode("utf-8")) / 4)
        return len(self._encode(text))

    def count_message(self, message: dict[str, Any]) -> int:
        """Tokens one message adds to a prompt (content, role and per-message overhead).

        Tool traffic counts too: a message's tool calls, and a Responses input item's
        ``arguments`` or ``output``, as their text (an estimate: the budget's, not the bill's).
        """
        role = message.get("role") or message.get("type") or ""
        content = message.get("content")
        if not isinstance(content, str):
            parts = [message.get(k) for k in ("content", "tool_calls", "arguments", "output")]
            content = json.dumps([p for p in parts if p], ensure_ascii=False) if any(parts) else ""
        key = (role, content, message.get("name"))
        cached = self._message_cache.get(key)
        if cached is None:
            cached = TOKENS_PER_MESSAGE + self.count_text(key[1]) + self.count_text(key[0])
            if key[2]:
                cached += self.count_text(key[2]) + TOKENS_PER_NAME
            if len(self._message_cache) > 65536:
                self._message_cache.clear()
            self._message_cache[key] = cached
        return cached

    def count_messages(self, messages: Sequence[dict[str, Any]]) -> int:
        """Prompt tokens of a whole request, reply priming included."""
        return sum(self.count_message(m) for m in messages) + REPLY_PRIMING


def _load_encoder(encoding: str) -> Any:
    try:
        import tiktoken

        return tiktoken.get_encoding(encoding).encode_ordinary
    except Exception as exc:  # tiktoken raises a requests error offline, ValueError if unknown
        if encoding not in _warned:
            _warned.add(encoding)
            log.warning(
                "tiktoken encoding %s is unavailable (%s): token counts are approximate; "
                "set TIKTOKEN_CACHE_DIR to a folder holding the encoding files to count exactly",
                encoding,
                type(exc).__name__,
            )
        return None


@lru_cache(maxsize=16)
def get_counter(encoding: str = "o200k_base") -> TokenCounter:
    """The shared counter for an encoding (built once a process)."""
    return TokenCounter(encoding)


def encoding_for(model: str, encoding: str | None) -> str:
    """The encoding a preset names, else tiktoken's guess from the model name, else o200k_base."""
    if encoding:
        return encoding
    try:
        import tiktoken

        return tiktoken.encoding_name_for_model(model)
    except (KeyError, ImportError):
        return "o200k_base"


def count_tokens(messages: Sequence[dict[str, Any]], encoding: str = "o200k_base") -> int:
    """Prompt tokens of a list of chat messages under the cookbook's rules."""
    return get_counter(encoding).count_messages(messages)
