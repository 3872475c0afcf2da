# The public API of ``runner``: each name is loaded from its module as it is first used.
from .analysis.results import load_results as load_results
from .base.errors import BudgetError as BudgetError
from .base.errors import ConfigError as ConfigError
from .base.errors import CredentialsError as CredentialsError
from .base.errors import QuestionsError as QuestionsError
from .base.errors import ResultsError as ResultsError
from .base.errors import RunnerError as RunnerError
from .base.record import CallError as CallError
from .base.record import TokenUsage as TokenUsage
from .base.record import TranscriptRecord as TranscriptRecord
from .base.schema import ModelPreset as ModelPreset
from .base.schema import RunConfig as RunConfig
from .cli.chat import ChatSession as ChatSession
from .cli.experiment import compose as compose
from .cli.experiment import run as run
from .core.chat import ChatTurn as ChatTurn
from .wire.tokens import count_tokens as count_tokens

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
