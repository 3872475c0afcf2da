"""The exceptions runner raises for expected failures.

Every message says the cause and the fix, on one line; the CLI prints it and exits 2.
Anything outside this family is a bug and keeps its traceback.

    RunnerError
    ├── ConfigError          a bad key or value in the composed config
    ├── QuestionsError       a question file that is missing or malformed (file and line named)
    ├── CredentialsError     the API key's environment variable is not set
    ├── ResultsError         a run or sweep directory that holds no transcripts
    ├── BudgetError          a question too large for the token budget (becomes an error record)
    └── OutputLocked         a run or sweep dir, or a transcript, that another process is writing

``Abort`` is not one of them: it carries a ``RunnerError`` out of a Hydra callback, where
Hydra would turn an ``Exception`` into a warning and carry on.
"""

from __future__ import annotations


class RunnerError(Exception):
    """Base class of every expected failure; ``str(error)`` is the one-line message."""


class ConfigError(RunnerError):
    """The composed configuration holds a bad key or value."""


class QuestionsError(RunnerError):
    """A question set cannot be read: the message names the file and line."""


class CredentialsError(RunnerError):
    """A remote model needs an API key that the environment does not hold."""


class ResultsError(RunnerError):
    """A path given to ``load_results`` holds no transcripts."""


class BudgetError(RunnerError):
    """A question does not fit the token budget even with no history."""


class OutputLocked(RunnerError):
    """Another process (its pid named when known) is writing the same directory or transcript."""


class Abort(BaseException):
    """Carries a ``RunnerError`` past Hydra's callbacks, which catch only ``Exception``."""

    def __init__(self, error: RunnerError) -> None:
        super().__init__(str(error))
        self.error = error
