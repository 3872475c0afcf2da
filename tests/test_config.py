import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import hydra_plugins.runner_launcher.runner_launcher  # noqa: F401  (registers hydra/launcher=runner)
from runner.config import CONF_DIR, RunConfig, register_schema, sampling_params, validate
from runner.errors import ConfigError

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "openai-models.csv"
PRESETS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


@pytest.fixture
def composer() -> Iterator:
    register_schema()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda *overrides: compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()


def test_defaults_compose_to_the_offline_echo_run(composer) -> None:
    run = validate(composer())
    assert isinstance(run, RunConfig)
    assert (run.model.name, run.model.engine, run.system.name) == ("echo", "echo", "helpful")
    assert run.questions.name == "capitals" and run.questions.items


@pytest.mark.parametrize("group", ["model", "system", "sampling", "questions"])
def test_every_preset_composes_and_validates(composer, group: str) -> None:
    names = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    assert len(names) >= {"model": 6, "system": 3, "sampling": 2, "questions": 2}[group]
    for name in names:
        overrides = [f"{group}={name}"] + (["sampling=default"] if group == "model" else [])
        if group == "sampling":
            overrides.append("model=echo")
        assert validate(composer(*overrides))


def test_required_presets_exist() -> None:
    for name in [
        "echo",
        "gpt-6-luna",
        "gpt-6-sol",
        "gpt-5.6-luna",
        "gpt-5.4-mini",
        "gpt-4.1-mini",
        "ollama",
    ]:
        assert name in PRESETS


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference table not beside the repo")
def test_openai_presets_match_the_reference_table(composer) -> None:
    with REFERENCE.open() as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    checked = 0
    for name in PRESETS:
        model = validate(composer(f"model={name}", "sampling=default")).model
        if model.engine != "openai" or model.name not in rows:
            continue
        row = rows[model.name]
        assert model.context_window == int(row["max_input_tokens"])
        assert model.max_output_tokens == int(row["max_output_tokens"])
        assert model.prices.input == float(row["usd_per_1m_input"])
        assert model.prices.cached_input == float(row["usd_per_1m_cached_input"])
        assert model.prices.output == float(row["usd_per_1m_output"])
        reasoning = row["reasoning"] == "True"
        assert (model.max_tokens_param == "max_completion_tokens") == reasoning
        assert ("temperature" in model.accepts) != reasoning
        checked += 1
    assert checked >= 5


def test_local_preset_shows_base_url(composer) -> None:
    model = validate(composer("model=ollama")).model
    assert model.base_url and model.base_url.startswith("http://localhost")
    assert model.api_key_env is None


def test_every_yaml_key_is_commented() -> None:
    for path in CONF_DIR.rglob("*.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-", "{")) or ":" not in stripped:
                continue
            key_line = not stripped.startswith(("'", '"')) and stripped.split(":")[0].isidentifier()
            in_block = line.startswith("  ") and path.parent.name in ("system",)
            if key_line and not in_block:
                previous = path.read_text().splitlines()[number - 2].strip() if number > 1 else ""
                assert "#" in line or previous.startswith("#"), f"{path.name}:{number} {line!r}"


def test_reasoning_models_reject_temperature(composer) -> None:
    with pytest.raises(ConfigError, match=r"gpt-6-luna does not accept sampling\.temperature"):
        validate(composer("model=gpt-6-luna", "sampling.temperature=0.2"))


def test_max_tokens_goes_out_under_the_models_name(composer) -> None:
    run = validate(composer("model=gpt-6-luna", "sampling=reasoning"))
    params = sampling_params(run)
    assert params["max_completion_tokens"] == run.sampling.max_tokens
    assert "max_tokens" not in params and "temperature" not in params
    echo = sampling_params(validate(composer("sampling=creative")))
    assert echo["max_tokens"] == 1024 and echo["temperature"] == 1.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sampling.temperature=3", "sampling.temperature=3.0 is out of range"),
        ("concurrency=0", "concurrency=0 is out of range"),
        ("sampling.reasoning_effort=huge", "one of none, minimal"),
        ("model.engine=grpc", "'openai' or 'echo'"),
    ],
)
def test_out_of_range_values_name_the_key(composer, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(composer(override))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+sampling.temprature=0.5",
            r"unknown key sampling\.temprature: did you mean sampling\.temperature\?",
        ),
        (
            "+retry.max_attempt=2",
            r"unknown key retry\.max_attempt: did you mean retry\.max_attempts\?",
        ),
        (
            "+questions.items.0.answr=x",
            r"unknown key questions\.items\[0\]\.answr: known keys here: id,",
        ),
        ("+foo=1", r"unknown key foo: known keys here: model, system"),
    ],
)
def test_keys_added_with_plus_are_checked_too(composer, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(composer(override))
