"""runner: a Hydra-configured prompt experiment runner.

Describe an experiment in ``conf/``, run ``python -m runner`` (or sweep with ``-m``), and
every API call becomes one JSONL record; ``load_results`` turns a run or a sweep into one
pandas DataFrame.
"""

from runner.analysis.results import load_results
from runner.base.errors import (
    BudgetError,
    ConfigError,
    CredentialsError,
    QuestionsError,
    ResultsError,
    RunnerError,
)
from runner.base.record import CallError, TokenUsage, TranscriptRecord
from runner.cli.experiment import compose, run
from runner.core.chat import ChatSession, ChatTurn
from runner.core.config import ModelPreset, RunConfig
from runner.wire.tokens import count_tokens

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
