"""One simulator of the OpenAI wire protocol (Chat Completions, Responses, conversations) that
the offline ``echo`` model and the tests' fake server both answer with, each by its persona."""

from runner.wire.simulator.chat import DONE, ChatAnswer, ChatChoice, Step, include_usage
from runner.wire.simulator.errors import Reply, dumps, error_body
from runner.wire.simulator.exchange import Exchange, sse_event
from runner.wire.simulator.persona import Ids, Persona
from runner.wire.simulator.service import Simulator
from runner.wire.simulator.state import Store

__all__ = [
    "DONE",
    "ChatAnswer",
    "ChatChoice",
    "Exchange",
    "Ids",
    "Persona",
    "Reply",
    "Simulator",
    "Step",
    "Store",
    "dumps",
    "error_body",
    "include_usage",
    "sse_event",
]
