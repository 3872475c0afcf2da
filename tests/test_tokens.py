import logging

import pytest

from runner.wire import tokens
from runner.wire.tokens import TokenCounter, count_tokens, encoding_for

# The OpenAI cookbook's example ("How to count tokens with tiktoken"): the API reported 129
# prompt tokens for cl100k_base models and 124 for o200k_base models.
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that "
        "translates corporate jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more "
        "bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean "
        "for the client deliverable.",
    },
]


@pytest.mark.needs_encodings
@pytest.mark.parametrize(("encoding", "expected"), [("cl100k_base", 129), ("o200k_base", 124)])
def test_cookbook_counts_match_what_the_api_reported(encoding: str, expected: int) -> None:
    assert count_tokens(COOKBOOK, encoding) == expected


@pytest.mark.needs_encodings
def test_each_message_is_encoded_once() -> None:
    counter = TokenCounter("o200k_base")
    calls = []
    encode = counter._encode
    counter._encode = lambda text: calls.append(text) or encode(text)
    counter.count_text.cache_clear()
    message = {"role": "user", "content": "How many tokens is this?"}
    first = counter.count_messages([message])
    assert counter.count_messages([message, message]) == 2 * first - 3
    assert calls.count("How many tokens is this?") == 1


def test_encoding_comes_from_the_preset_then_the_name_then_o200k() -> None:
    assert encoding_for("anything", "cl100k_base") == "cl100k_base"
    assert encoding_for("gpt-4o", None) == "o200k_base"
    assert encoding_for("gpt-6-luna", None) == "o200k_base"  # unknown to tiktoken


def test_missing_encoding_files_fall_back_to_an_estimate_and_warn_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    import tiktoken.registry

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # holds no encoding files
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    monkeypatch.setattr(tokens, "_warned", set())

    def offline(url: str) -> bytes:
        raise ConnectionError(f"no network for {url}")

    monkeypatch.setattr("tiktoken.load.read_file", offline)
    with caplog.at_level(logging.WARNING, logger="runner.wire.tokens"):
        first = TokenCounter("o200k_base")
        second = TokenCounter("o200k_base")
    assert first.method == second.method == tokens.APPROXIMATE
    assert first.count_messages([{"role": "user", "content": "a" * 40}]) == 3 + 10 + 1 + 3
    warnings = [r for r in caplog.records if "approximate" in r.getMessage()]
    assert len(warnings) == 1
    assert "TIKTOKEN_CACHE_DIR" in warnings[0].getMessage()
