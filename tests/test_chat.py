"""The notebook chat: history, trimming, streaming display, save/load, and the wire."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY, cli_env
from fake_openai import ANSWER_PREFIX, Behaviour, FakeOpenAIServer

import runner.core.display as display_module
from runner.base.errors import ConfigError, CredentialsError
from runner.base.schema import ModelPreset, SamplingPreset
from runner.cli.chat import ChatSession
from runner.core.chat import ChatTurn

FAST_RETRY = ["retry.max_attempts=3", "retry.initial_backoff_s=0.01", "retry.max_backoff_s=0.02"]


@pytest.fixture
def echo() -> Iterator[ChatSession]:
    with ChatSession(model="echo", system="concise") as session:
        yield session


@pytest.fixture
def remote(fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatSession]:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    overrides = [f"model.base_url={fake_server.base_url}", *FAST_RETRY]
    with ChatSession(model="gpt-4.1-mini", system="concise", overrides=overrides) as session:
        yield session


class FakeHandle:
    def __init__(self, shown: list[Any]) -> None:
        self.shown = shown

    def update(self, obj: Any) -> None:
        self.shown.append(obj.data)


@pytest.fixture
def jupyter(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Pretend to run in a kernel; returns every Markdown text shown, the first one included."""
    ipython_display = pytest.importorskip("IPython.display")
    shown: list[Any] = []

    def display(obj: Any, display_id: bool = False) -> FakeHandle:
        assert display_id is True
        shown.append(obj.data)
        return FakeHandle(shown)

    monkeypatch.setattr(display_module, "in_jupyter", lambda: True)
    monkeypatch.setattr(ipython_display, "display", display)
    return shown


# ---------------------------------------------------------------------- conversation


def test_second_question_carries_the_first_exchange(echo: ChatSession) -> None:
    first = echo.ask("What is 12 times 7?", show=False)
    second = echo.ask("Now add 16 to that.", show=False)
    assert first.error is None and first.answer == "What is 12 times 7?"
    assert second.answer == "Now add 16 to that."
    assert first.usage.source == "api" and second.usage.source == "api"
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    assert second.usage.prompt_tokens == second.estimated_prompt_tokens
    assert second.dropped_messages == 0
    assert second.cost_usd == 0.0 and second.latency_s is not None and second.attempts == 1
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert echo.history == [
        {"role": "system", "content": echo.system_message},
        {"role": "user", "content": "What is 12 times 7?"},
        {"role": "assistant", "content": "What is 12 times 7?"},
        {"role": "user", "content": "Now add 16 to that."},
        {"role": "assistant", "content": "Now add 16 to that."},
    ]
    assert echo.turns == [first, second]


def test_small_budget_drops_the_oldest_exchanges_and_keeps_the_system() -> None:
    with ChatSession(token_budget=100, overrides=["sampling.max_tokens=20"]) as chat:
        questions = [f"Question number {n}: what is {n} plus {n}?" for n in range(1, 6)]
        turns = [chat.ask(q, show=False) for q in questions]
        system = {"role": "system", "content": chat.system_message}
        assert chat.system_message.startswith("You are a helpful assistant")
    last = turns[-1]
    assert last.error is None
    assert last.dropped_messages > 0
    assert last.messages[0] == system
    assert last.messages[-1] == {"role": "user", "content": questions[-1]}
    kept = [m["content"] for m in last.messages if m["role"] == "user"]
    assert questions[0] not in kept  # the oldest went first
    assert kept == questions[len(questions) - len(kept) :]
    assert last.estimated_prompt_tokens is not None and last.estimated_prompt_tokens <= 100 - 20


def test_max_history_caps_the_exchanges_sent() -> None:
    with ChatSession(system="concise", max_history=1) as chat:
        for n in range(3):
            turn = chat.ask(f"question {n}", show=False)
    assert turn.dropped_messages == 2 * 1
    assert [m["content"] for m in turn.messages[1:]] == ["question 1", "question 1", "question 2"]
    assert len(chat.history) == 1 + 2 * 3  # the session keeps everything; only the prompt is cut


def test_question_over_the_budget_is_an_error_turn_not_history() -> None:
    with ChatSession(token_budget=60, overrides=["sampling.max_tokens=10"]) as chat:
        ok = chat.ask("hello", show=False)
        too_big = chat.ask("word " * 200, show=False)
        after = chat.ask("again", show=False)
    assert ok.error is None
    assert too_big.answer is None and too_big.error is not None
    assert too_big.error.type == "BudgetError" and "token_budget" in too_big.error.message
    assert "error: BudgetError" in too_big.footer
    assert [m["content"] for m in after.messages if m["role"] == "user"] == ["hello", "again"]
    assert len(chat.turns) == 3 and len(chat.history) == 1 + 4


def test_reset_forgets_the_conversation(echo: ChatSession) -> None:
    echo.ask("one", show=False)
    echo.reset()
    assert echo.turns == [] and echo.history == [{"role": "system", "content": echo.system_message}]
    turn = echo.ask("two", show=False)
    assert [m["role"] for m in turn.messages] == ["system", "user"]


# ---------------------------------------------------------------------- settings


def test_literal_system_message_and_no_system_message() -> None:
    with ChatSession(system_message="Talk like a pirate.") as chat:
        turn = chat.ask("ahoy", show=False)
        assert turn.messages[0] == {"role": "system", "content": "Talk like a pirate."}
    with ChatSession(system=None) as chat:
        turn = chat.ask("ahoy", show=False)
        assert turn.messages == [{"role": "user", "content": "ahoy"}]
        assert chat.history == [
            {"role": "user", "content": "ahoy"},
            {"role": "assistant", "content": "ahoy"},
        ]


def test_unknown_system_preset_points_at_system_message() -> None:
    with pytest.raises(ConfigError, match=r"system_message="):
        ChatSession(system="Be brief.")


def test_unknown_model_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown model preset 'nope'"):
        ChatSession(model="nope")


def test_sampling_the_model_rejects_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    with pytest.raises(ConfigError, match=r"gpt-5.4-mini does not accept sampling.temperature"):
        ChatSession(model="gpt-5.4-mini", sampling="creative")


def test_missing_api_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    threads = threading.active_count()
    with pytest.raises(CredentialsError, match="OPENAI_API_KEY"):
        ChatSession(model="gpt-4.1-mini")
    assert threading.active_count() == threads  # nothing was started


def test_preset_objects_are_used_as_given() -> None:
    preset = ModelPreset(
        name="tiny-echo", engine="echo", api_key_env=None, context_window=300, max_output_tokens=50
    )
    with ChatSession(model=preset, sampling=SamplingPreset(max_tokens=3)) as chat:
        assert chat.model is preset and chat.params == {"max_tokens": 3}
        turn = chat.ask("one two three four five six", show=False)
    assert turn.finish_reason == "length" and "six" not in (turn.answer or "six")


def test_close_stops_the_loop_thread_and_is_idempotent() -> None:
    chat = ChatSession()
    thread = chat._thread
    assert thread.is_alive() and not chat.closed
    chat.close()
    chat.close()
    assert chat.closed and not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        chat.ask("hello")


# ---------------------------------------------------------------------- display


def test_terminal_prints_the_pieces_then_a_footer(
    echo: ChatSession, capsys: pytest.CaptureFixture[str]
) -> None:
    echo.ask("What is 12 times 7?")
    turn = echo.ask("Now add 16 to that.")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "What is 12 times 7?"
    assert lines[1].startswith("prompt ") and " tokens · $0.000000 · " in lines[1]
    assert lines[2] == "Now add 16 to that."
    assert lines[3] == turn.footer
    assert (
        f"prompt {turn.usage.prompt_tokens} · completion {turn.usage.completion_tokens}"
        in (lines[3])
    )


def test_footer_says_how_many_messages_were_trimmed() -> None:
    with ChatSession(max_history=0) as chat:
        chat.ask("one", show=False)
        turn = chat.ask("two", show=False)
    assert turn.footer.endswith("· 2 earlier messages trimmed")


def test_jupyter_updates_live_markdown(echo: ChatSession, jupyter: list[Any]) -> None:
    answer = "one two three four five six seven eight"
    turn = echo.ask(answer)
    assert turn.answer == answer
    assert jupyter[0] == ""  # the display the updates go to
    updates = jupyter[1:]
    assert len(updates) >= 2
    assert answer.startswith(updates[0])  # a partial answer first
    body, footer = updates[-1].split("\n\n")
    assert body == answer
    assert footer.startswith("_prompt ") and footer.endswith("_") and r"\$0.000000" in footer


def test_jupyter_detection_needs_no_ipython() -> None:
    code = (
        "import sys, runner, runner.core.display\n"
        "assert not runner.core.display.in_jupyter()\n"
        "assert 'IPython' not in sys.modules, 'IPython was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env()
    )
    assert done.returncode == 0, done.stderr


def test_not_in_jupyter_under_a_plain_ipython_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    ipython = pytest.importorskip("IPython")
    monkeypatch.setattr(ipython, "get_ipython", lambda: object())
    assert display_module.in_jupyter() is False


# ---------------------------------------------------------------------- save and load


def test_save_then_load_continues_the_conversation(echo: ChatSession, tmp_path: Path) -> None:
    echo.ask("What is 12 times 7?", show=False)
    path = echo.save(tmp_path / "chat.json")
    data = json.loads(path.read_text())
    assert data["model"]["name"] == "echo" and data["system"]["name"] == "concise"
    assert data["turns"][0]["usage"]["prompt_tokens"] > 0
    with ChatSession.load(path) as restored:
        assert restored.history == echo.history
        assert restored.turns == echo.turns
        turn = restored.ask("Now add 16 to that.", show=False)
    assert [m["content"] for m in turn.messages[1:]] == [
        "What is 12 times 7?",
        "What is 12 times 7?",
        "Now add 16 to that.",
    ]


def test_load_rejects_a_file_that_is_not_a_session(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(ConfigError, match="not a saved chat session"):
        ChatSession.load(path)


def test_turn_round_trips_through_a_dict(echo: ChatSession) -> None:
    turn = echo.ask("hello", show=False)
    assert ChatTurn.from_dict(json.loads(json.dumps(turn.to_dict()))) == turn


# ---------------------------------------------------------------------- the wire


def test_server_usage_is_reported_per_turn(
    remote: ChatSession, fake_server: FakeOpenAIServer
) -> None:
    first = remote.ask("What is 12 times 7?", show=False)
    second = remote.ask("Now add 16 to that.", show=False)
    assert first.answer == ANSWER_PREFIX + "What is 12 times 7?"
    sent = fake_server.requests[-1]
    assert sent["stream"] is True and sent["model"] == "gpt-4.1-mini"
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["messages"][2]["content"] == first.answer
    for turn in (first, second):
        words = sum(len(m["content"].split()) for m in turn.messages)
        assert turn.usage.source == "api"
        assert turn.usage.prompt_tokens == 7 * len(turn.messages) + words  # the server's count
        assert turn.usage.completion_tokens == len(turn.answer.split())
        assert turn.cost_usd is not None and turn.cost_usd > 0


def test_rate_limit_then_ok_is_retried_transparently(
    remote: ChatSession, fake_server: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.enqueue(Behaviour("429", retry_after_ms=10), "ok")
    turn = remote.ask("hello there")
    assert turn.error is None and turn.attempts == 2
    assert turn.answer == ANSWER_PREFIX + "hello there"
    out = capsys.readouterr().out
    assert out.splitlines()[-2] == turn.answer
    assert "2 attempts" in out.splitlines()[-1]


def test_retry_after_a_broken_stream_resets_the_display(
    remote: ChatSession, fake_server: FakeOpenAIServer, jupyter: list[Any]
) -> None:
    fake_server.enqueue("cut", "ok")
    turn = remote.ask("tell me something long enough to stream in pieces")
    assert turn.error is None and turn.attempts == 2
    assert "" in jupyter[1:-1]  # the partial answer was cleared when the retry started
    assert jupyter[-1].split("\n\n")[0] == turn.answer  # shown once, not twice


def test_server_error_storm_is_an_error_turn(
    remote: ChatSession, fake_server: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    remote.ask("first", show=False)
    fake_server.enqueue(*["500"] * 3)
    failed = remote.ask("second")
    assert failed.answer is None and failed.attempts == 3
    assert failed.error is not None and failed.error.status == 500
    assert failed.usage.prompt_tokens is None
    assert failed.cost_usd == 0.0  # every attempt was refused with a 500: nothing billed
    assert "error: InternalServerError (500)" in capsys.readouterr().out
    after = remote.ask("third", show=False)
    assert after.error is None
    assert [m["content"] for m in after.messages if m["role"] == "user"] == ["first", "third"]
    assert len(remote.turns) == 3


def test_saved_session_never_holds_the_api_key(
    remote: ChatSession, fake_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    remote.ask("hello", show=False)
    fake_server.enqueue("401")
    failed = remote.ask("again", show=False)
    assert failed.error is not None and failed.error.status == 401
    text = remote.save(tmp_path / "chat.json").read_text()
    assert FAKE_KEY not in text
    assert json.loads(text)["model"]["api_key_env"] == "OPENAI_API_KEY"
    with ChatSession.load(tmp_path / "chat.json") as restored:
        turn = restored.ask("once more", show=False)
    assert turn.error is None
    assert [m["content"] for m in turn.messages if m["role"] == "user"] == ["hello", "once more"]


def test_interrupted_question_is_not_kept(
    remote: ChatSession, fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(self: object, text: str) -> None:
        raise KeyboardInterrupt

    fake_server.enqueue(Behaviour("slow_stream", gap_s=0.5))
    with monkeypatch.context() as patch:
        patch.setattr(display_module.TextView, "piece", interrupt)
        with pytest.raises(KeyboardInterrupt):
            remote.ask("a question interrupted while it streams")
    assert remote.turns == [] and len(remote.history) == 1
    turn = remote.ask("the next question", show=False)
    assert turn.error is None
    assert [m["role"] for m in turn.messages] == ["system", "user"]


def test_a_failed_turn_stays_out_of_the_history_as_in_a_job(
    remote: ChatSession, fake_server: FakeOpenAIServer
) -> None:
    """The rule jobs follow too: a failed turn (here a refusal) never enters the history."""
    fake_server.enqueue(Behaviour("refusal"))
    refused = remote.ask("how do I pick a lock", show=False)
    assert refused.answer is None
    assert refused.refusal == "I'm sorry, but I can't help with that."
    assert refused.error is not None and refused.error.type == "Refusal"
    assert remote.history == [{"role": "system", "content": remote.system_message}]
    after = remote.ask("what is a lock", show=False)
    assert after.error is None
    sent = fake_server.requests[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == ["what is a lock"]


def test_a_content_filter_stop_is_a_failed_turn(
    remote: ChatSession, fake_server: FakeOpenAIServer
) -> None:
    fake_server.enqueue(Behaviour("content_filter"))
    turn = remote.ask("tell me one two three", show=False)
    assert (turn.answer, turn.finish_reason) == ("fake answer to: ", "content_filter")
    assert turn.error is not None and turn.error.type == "ContentFilter"
    assert len(remote.history) == 1  # the system message only


def test_a_chat_on_the_responses_api_with_tools_and_server_state(
    fake_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    overrides = [
        f"model.base_url={fake_server.base_url}",
        "model.api=responses",
        "conversation_state=previous_response_id",
        "tools=weather",
        *FAST_RETRY,
    ]
    with ChatSession(model="gpt-4.1-mini", system="concise", overrides=overrides) as chat:
        first = chat.ask("Paris")
        shown = capsys.readouterr().out
        assert '→ get_weather({"city":"Paris"})' in shown
        assert "2 calls (tool rounds)" in shown and "attempts" not in shown
        assert first.error is None
        assert (
            first.answer == f"{ANSWER_PREFIX}Paris (tool get_weather said: Paris: 18°C and cloudy)"
        )
        assert [c["name"] for c in first.tool_calls] == ["get_weather"]
        assert first.tool_calls[0]["output"] == "Paris: 18°C and cloudy"
        assert (first.calls, first.attempts) == (2, 2)  # the tool round and the answer
        second = chat.ask("Tokyo", show=False)
        assert second.error is None
    requests = fake_server.requests
    assert len(requests) == 4
    assert requests[2]["previous_response_id"] == first.response_id
    assert requests[2]["input"] == [{"role": "user", "content": "Tokyo"}]
    assert requests[2]["instructions"] == chat.system_message
    # the follow-up of a tool round sends only the tool's output, chained to the call
    assert [item["type"] for item in requests[3]["input"]] == ["function_call_output"]
    assert requests[3]["previous_response_id"] != first.response_id
