import runner


def test_public_api_is_one_sorted_all() -> None:
    assert runner.__all__ == sorted(runner.__all__)
    for name in runner.__all__:
        assert getattr(runner, name) is not None
    public = {n for n in vars(runner) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(runner, n)).__name__ == "module"}
    assert public - modules == set(runner.__all__)


def test_errors_form_one_family() -> None:
    for name in [
        "BudgetError",
        "ConfigError",
        "CredentialsError",
        "QuestionsError",
        "ResultsError",
    ]:
        assert issubclass(getattr(runner, name), runner.RunnerError)
