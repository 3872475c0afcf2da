import json
from pathlib import Path

import pytest

from runner.base.errors import QuestionsError
from runner.base.schema import QuestionItem, QuestionSet, TurnSpec
from runner.core.files import CONF_DIR
from runner.core.questions import Turn, load_conversations, resolve_path


def test_inline_single_questions_and_conversations() -> None:
    qset = QuestionSet(
        name="mix",
        items=[
            QuestionItem(id="a", question="2+2?", expected="4"),
            QuestionItem(id="b", turns=[TurnSpec("Pick a number."), TurnSpec("Double it.", "x")]),
            QuestionItem(question="no id"),
        ],
    )
    convs = load_conversations(qset)
    assert [c.id for c in convs] == ["a", "b", "q-83f3e8f3"]
    assert convs[0].turns[0].expected == "4"
    assert [t.question for t in convs[1].turns] == ["Pick a number.", "Double it."]


def test_an_item_without_an_id_keeps_its_id_when_others_move() -> None:
    def ids(*questions: str) -> list[str]:
        items = [QuestionItem(question=q) for q in questions]
        return [c.id for c in load_conversations(QuestionSet(name="s", items=items))]

    before = ids("alpha", "bravo", "charlie")
    after = ids("zulu", "alpha", "charlie")
    assert after[1] == before[0] and after[2] == before[2]
    assert after[0] not in before
    # the same question twice: the copies are numbered, never merged
    twice = ids("alpha", "alpha", "alpha")
    assert twice == [before[0], before[0] + "-2", before[0] + "-3"]


def test_the_shipped_jsonl_and_csv_sets_load() -> None:
    jsonl = load_conversations(QuestionSet(name="t", path="questions/data/trivia.jsonl"))
    csv = load_conversations(
        QuestionSet(name="t", path=str(CONF_DIR / "questions/data/trivia.csv"))
    )
    assert any(len(c.turns) > 1 for c in jsonl)
    assert [c.id for c in csv] == [c.id for c in jsonl if len(c.turns) == 1]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "a", "question": "ok"}\n{"id": "b", "question": \n', "line 2: not valid JSON"),
        ('{"id": "a", "question": "ok"}\n\n[1, 2]\n', "line 3: expected an object"),
        ('{"id": "a", "quest": "typo"}\n', "line 1: unknown field 'quest'"),
        ('{"id": "a", "question": "q", "turns": [{"question": "t"}]}\n', "line 1: give either"),
        ('{"id": "a", "turns": [{"question": "t"}, {"answer": "x"}]}\n', "line 1, turn 2"),
        ('{"id": "a", "question": "q"}\n{"id": "a", "question": "r"}\n', "the id 'a' twice"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.jsonl", text)
    with pytest.raises(QuestionsError, match=message) as info:
        load_conversations(QuestionSet(name="bad", path=path))
    if "twice" not in message:
        assert str(path) in str(info.value)


def test_malformed_csv_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "id,question,expected\na,one,1\nb,two,2,extra\n")
    with pytest.raises(QuestionsError, match=r"bad\.csv, line 3: more fields"):
        load_conversations(QuestionSet(name="bad", path=path))


def test_missing_file_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    with pytest.raises(QuestionsError) as caught:
        load_conversations(QuestionSet(name="x", path="nope.jsonl"))
    assert str(caught.value) == (
        f"questions file nope.jsonl not found (looked in {tmp_path / 'nope.jsonl'}, "
        f"{tmp_path / 'conf' / 'nope.jsonl'}, {CONF_DIR / 'nope.jsonl'}): fix questions.path"
    )


def test_a_relative_path_resolves_against_the_cwd_then_the_users_tree_then_the_packaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = "questions/data/trivia.jsonl"
    assert resolve_path(relative) == CONF_DIR / relative  # nothing of the user's: packaged
    mine = tmp_path / "conf" / relative
    mine.parent.mkdir(parents=True)
    mine.write_text('{"id": "mine", "question": "Whose?"}\n')
    assert resolve_path(relative) == mine  # ./conf before the packaged tree
    here = tmp_path / relative
    here.parent.mkdir(parents=True)
    here.write_text('{"id": "here", "question": "Where?"}\n')
    assert resolve_path(relative) == here  # the working directory first
    assert [c.id for c in load_conversations(QuestionSet(name="t", path=relative))] == ["here"]


def test_unsupported_suffix_and_empty_set(tmp_path: Path) -> None:
    with pytest.raises(QuestionsError, match=r"use \.jsonl or \.csv"):
        load_conversations(QuestionSet(name="x", path=write(tmp_path, "q.txt", "hi")))
    with pytest.raises(QuestionsError, match="has no questions"):
        load_conversations(QuestionSet(name="x", path=write(tmp_path, "q.jsonl", "\n")))


def test_expected_answers_are_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "n.jsonl", json.dumps({"id": "n", "question": "6*7", "expected": 42}))
    assert load_conversations(QuestionSet(name="n", path=path))[0].turns[0].expected == "42"


@pytest.mark.parametrize("name", ["latin1.jsonl", "latin1.csv"])
def test_a_file_that_is_not_utf8_names_the_line_and_the_fix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".csv"):
        text = "id,question,expected\na,Capital of France?,Paris\nb,Où est Genève?,Suisse\n"
    else:
        text = '{"id": "a", "question": "ok"}\n{"id": "b", "question": "Où est Genève?"}\n'
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(QuestionsError) as info:
        load_conversations(QuestionSet(name="l", path=str(path)))
    line = 3 if name.endswith(".csv") else 2
    assert str(info.value) == f"{path}, line {line}: not UTF-8 (byte 0xf9): save the file as UTF-8"


def test_a_byte_order_mark_is_read_as_utf8(tmp_path: Path) -> None:
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes("id,question,expected\nq7,Où?,Genève\n".encode("utf-8-sig"))
    jsonl_path = tmp_path / "bom.jsonl"
    jsonl_path.write_bytes(
        '{"id": "j1", "question": "Où?", "expected": "Genève"}\n'.encode("utf-8-sig")
    )
    for path, conv_id in [(csv_path, "q7"), (jsonl_path, "j1")]:
        (conv,) = load_conversations(QuestionSet(name="b", path=str(path)))
        assert conv.id == conv_id
        assert conv.turns == (Turn("Où?", "Genève"),)


def test_a_file_that_cannot_be_read_names_it(tmp_path: Path, monkeypatch) -> None:
    path = Path(write(tmp_path, "locked.jsonl", '{"question": "q"}\n'))

    def refuse(self: Path) -> bytes:  # what chmod 000 does for anyone but root
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(QuestionsError) as info:
        load_conversations(QuestionSet(name="l", path=str(path)))
    assert str(info.value) == (
        f"questions file {path} cannot be read (Permission denied): fix questions.path"
    )
