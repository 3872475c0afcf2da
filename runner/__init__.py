"""runner: a Hydra-configured prompt experiment runner.

Describe an experiment in ``conf/``, run ``python -m runner`` (or sweep with ``-m``), and
every API call becomes one JSONL record; ``load_results`` turns a run or a sweep into one
pandas DataFrame.
"""

from runner.chat import ChatSession, ChatTurn
from runner.config import ModelPreset, RunConfig
from runner.errors import (
    BudgetError,
    ConfigError,
    CredentialsError,
    QuestionsError,
    ResultsError,
    RunnerError,
)
from runner.experiment import compose, run
from runner.record import CallError, TokenUsage, TranscriptRecord
from runner.results import load_results
from runner.tokens import count_tokens

__all__ = [
    "BudgetError",
    "CallError",
    "ChatSession",
    "ChatTurn",
    "ConfigError",
    "CredentialsError",
    "ModelPreset",
    "QuestionsError",
    "ResultsError",
    "RunConfig",
    "RunnerError",
    "TokenUsage",
    "TranscriptRecord",
    "compose",
    "count_tokens",
    "load_results",
    "run",
]
