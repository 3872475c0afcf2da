import pytest

from runner.config import ScorerSpec
from runner.scoring import check_scorer, score_answer

LOOSE = ScorerSpec(kind="exact")
STRICT = ScorerSpec(kind="exact", ignore_case=False, normalize_whitespace=False)


@pytest.mark.parametrize(
    ("kind", "answer", "expected", "spec", "score"),
    [
        ("exact", "  Paris ", "paris", LOOSE, 1.0),
        ("exact", "Paris", "paris", STRICT, 0.0),
        ("exact", "New   York", "new york", LOOSE, 1.0),
        ("exact", "New   York", "New York", STRICT, 0.0),
        ("contains", "The capital is Paris.", "paris", LOOSE, 1.0),
        ("contains", "The capital is Lyon.", "paris", LOOSE, 0.0),
        ("regex", "It is 84, I think", r"\b84\b", LOOSE, 1.0),
        ("regex", "PARIS", "^paris$", LOOSE, 1.0),
        ("regex", "PARIS", "^paris$", STRICT, 0.0),
        ("numeric", "12 times 7 is 84.", "84", LOOSE, 1.0),
        ("numeric", "It is 1,000 exactly", "1000", LOOSE, 1.0),
        ("numeric", "about 3.14", "3.1416", ScorerSpec(kind="numeric", tolerance=0.01), 1.0),
        ("numeric", "about 3.14", "3.1416", ScorerSpec(kind="numeric", tolerance=0.0), 0.0),
        ("numeric", "no number here", "5", LOOSE, 0.0),
    ],
)
def test_scorers(kind, answer, expected, spec, score) -> None:
    assert score_answer(answer, expected, spec, kind) == score


def test_nothing_to_compare_is_no_score() -> None:
    assert score_answer("Paris", None, LOOSE) is None
    assert score_answer(None, "Paris", LOOSE) is None


def test_the_sets_kind_applies_unless_a_turn_names_one() -> None:
    spec = ScorerSpec(kind="contains")
    assert score_answer("it is Paris", "paris", spec) == 1.0
    assert score_answer("it is Paris", "paris", spec, "exact") == 0.0


@pytest.mark.parametrize(
    ("kind", "expected", "problem"),
    [
        ("fuzzy", "x", "unknown scorer 'fuzzy'"),
        ("regex", "(", "not a valid regex"),
        ("numeric", "eighty", "not a number"),
    ],
)
def test_bad_scorers_are_caught_up_front(kind, expected, problem) -> None:
    assert problem in check_scorer(kind, expected, "here")
    assert check_scorer("numeric", "84", "here") is None
