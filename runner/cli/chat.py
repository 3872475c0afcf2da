"""The notebook chat as users start it: ``ChatSession(model=..., system=...)`` composes its
settings from the presets of the config trees, as the command line run from the working
directory would, and talks through the session mechanics of ``runner.core.chat``."""

from __future__ import annotations

from collections.abc import Sequence

from runner.base.errors import ConfigError
from runner.base.schema import ModelPreset, RunConfig, SamplingPreset, SystemPreset
from runner.cli.diagnostics import describe
from runner.cli.experiment import compose
from runner.core.chat import Chat
from runner.core.files import config_trees
from runner.core.validation import validate


class ChatSession(Chat):
    """A conversation with one model preset and one system message, streamed live.

    ``model``, ``system`` and ``sampling`` name presets in the config trees (``./conf``, then
    the packaged one: composed like ``python -m runner model=... system=... sampling=...
    <overrides>`` run from the working directory), or are preset objects used as given.
    ``system`` is always a preset name (or ``None`` for no system message); to send your own
    text, pass ``system_message="..."``, which takes precedence.
    ``overrides`` are Hydra override strings for anything else, e.g.
    ``["model.base_url=http://localhost:11434/v1", "retry.max_attempts=3"]``.
    ``max_history`` and ``token_budget``, when given, replace the config's values.

    The config is validated once, here: sampling params the model rejects raise
    ``ConfigError``, and a remote model whose API key variable is unset raises
    ``CredentialsError``. Close the session (``close()`` or a ``with`` block) to stop its
    event loop thread and HTTP clients.

    Example::

        chat = ChatSession(model="echo", system="concise")
        chat.ask("What is 12 times 7?")
        chat.ask("Now add 16 to that.")   # sent with the first exchange as history
        chat.close()
    """

    def __init__(
        self,
        model: str | ModelPreset = "echo",
        system: str | SystemPreset | None = "helpful",
        sampling: str | SamplingPreset = "default",
        overrides: Sequence[str] = (),
        *,
        system_message: str | None = None,
        max_history: int | None = None,
        token_budget: int | None = None,
    ) -> None:
        named_system = None if system_message is not None else system
        run = _compose_settings(model, named_system, sampling, overrides)
        if system is None:
            run.system = SystemPreset(name="none", message="")
        if system_message is not None:
            run.system = SystemPreset(name="custom", message=system_message)
        if max_history is not None:
            run.max_history = max_history
        if token_budget is not None:
            run.token_budget = token_budget
        self._start(run)


def _compose_settings(
    model: str | ModelPreset,
    system: str | SystemPreset | None,
    sampling: str | SamplingPreset,
    overrides: Sequence[str],
) -> RunConfig:
    """Compose the config trees with the named presets, then put in the preset objects given."""
    from hydra.errors import HydraException  # with the first session: imports stay cheap
    from omegaconf.errors import OmegaConfBaseException

    trees = config_trees()
    if isinstance(system, str) and not any(
        (t / "system" / f"{system}.yaml").is_file() for t in trees
    ):
        names = ", ".join(sorted({p.stem for t in trees for p in (t / "system").glob("*.yaml")}))
        raise ConfigError(
            f"unknown system preset {system!r}: choose one of {names} (files in "
            f"{', '.join(str(t / 'system') for t in trees)}), or pass your own text as "
            "system_message='...'"
        )
    choices = [
        f"model={model}" if isinstance(model, str) else None,
        f"system={system}" if isinstance(system, str) else None,
        f"sampling={sampling}" if isinstance(sampling, str) else None,
    ]
    try:
        cfg = compose([c for c in choices if c] + list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(describe(exc)) from None
    run = validate(cfg)
    if isinstance(model, ModelPreset):
        run.model = model
    if isinstance(system, SystemPreset):
        run.system = system
    if isinstance(sampling, SamplingPreset):
        run.sampling = sampling
    return run
