import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import hydra_plugins.runner_launcher.runner_launcher  # noqa: F401  (registers hydra/launcher=runner)
from runner.base.errors import ConfigError
from runner.base.schema import RunConfig
from runner.cli.hydra_setup import check_group_choices, register_schema
from runner.cli.init import STARTER
from runner.core.files import CONF_DIR, config_trees
from runner.core.validation import validate
from runner.wire.request import sampling_params

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


@pytest.mark.parametrize("tree", [CONF_DIR, STARTER], ids=["packaged", "starter"])
def test_every_yaml_key_is_commented(tree: Path) -> None:
    paths = sorted(tree.rglob("*.yaml"))
    assert len(paths) >= 4
    for path in paths:
        lines = path.read_text().splitlines()
        block_indent = None  # inside a block scalar (key: | or >-): its text, not keys
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if block_indent is not None and (not stripped or indent > block_indent):
                continue
            block_indent = None
            if not stripped or stripped.startswith(("#", "-", "{")) or ":" not in stripped:
                continue
            value = stripped.split("#")[0].strip()
            if value.endswith(("|", "|-", ">", ">-")):
                block_indent = indent
            key_line = not stripped.startswith(("'", '"')) and stripped.split(":")[0].isidentifier()
            if key_line:
                previous = lines[number - 2].strip() if number > 1 else ""
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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["retry.initial_backoff_s=-1"],
            "retry.initial_backoff_s=-1.0 is out of range: use a number of seconds of at least 0",
        ),
        (
            ["retry.max_backoff_s=-5"],
            "retry.max_backoff_s=-5.0 is out of range: use a number of seconds of at least "
            "retry.initial_backoff_s (1.0)",
        ),
        (
            ["retry.initial_backoff_s=2", "retry.max_backoff_s=0.5"],
            "retry.max_backoff_s=0.5 is out of range: use a number of seconds of at least "
            "retry.initial_backoff_s (2.0)",
        ),
        (
            ["retry.max_wait_s=0"],
            "retry.max_wait_s=0.0 is out of range: use a positive number of seconds",
        ),
        (
            ["retry.max_wait_s=-1"],
            "retry.max_wait_s=-1.0 is out of range: use a positive number of seconds",
        ),
    ],
)
def test_negative_retry_waits_are_rejected(composer, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(composer(*overrides))
    assert str(info.value) == message


def test_retry_waits_of_zero_backoff_are_allowed(composer) -> None:
    run = validate(composer("retry.initial_backoff_s=0", "retry.max_backoff_s=0"))
    assert (run.retry.initial_backoff_s, run.retry.max_backoff_s) == (0.0, 0.0)


@pytest.mark.parametrize(
    "url", ["localhost:8000/v1", "ftp://x", "http://", "http://host:port/v1", "//host/v1", "v1"]
)
def test_base_url_must_be_an_http_url(composer, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(composer(f"model.base_url='{url}'"))
    assert str(info.value) == (
        f"model.base_url={url!r} is not an http:// or https:// URL: "
        "write it as http://host:port/v1 (or null for the OpenAI API)"
    )


@pytest.mark.parametrize(
    "url", ["http://localhost:11434/v1", "https://api.example.com/v1", "http://[::1]:8000/v1"]
)
def test_http_base_urls_pass(composer, url: str) -> None:
    assert validate(composer(f"model.base_url='{url}'")).model.base_url == url


def test_null_base_url_passes(composer) -> None:
    assert validate(composer("model=gpt-4.1-mini")).model.base_url is None


PRESET_PATH = "a preset name must name a file in the config tree's {0}/ folder, e.g. {0}={1}"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["system=../../../etc/something"], "system=../../../etc/something: "),
        (["model=/abs/path"], "model=/abs/path: "),
        (["system=helpful,../b"], "system=../b: "),  # a sweep's every choice is checked
        (["system=[helpful,../b]"], "system=../b: "),
        (["system='../b'"], "system=../b: "),
        (["+system@extra=../b"], "system=../b: "),
        (["sampling=sub/../../x"], "sampling=sub/../../x: "),
    ],
)
def test_a_preset_choice_cannot_leave_its_folder(overrides: list[str], message: str) -> None:
    group = message.partition("=")[0]
    example = {"system": "concise", "model": "echo", "sampling": "creative"}[group]
    with pytest.raises(ConfigError) as info:
        check_group_choices(overrides)
    assert str(info.value) == message + PRESET_PATH.format(group, example)


def test_values_and_nested_presets_may_hold_paths() -> None:
    check_group_choices(
        [
            "questions.path=../data.jsonl",
            "cache.dir=/tmp/cache",
            "hydra.run.dir=../out",
            "system=team/pirate",
            "system=glob(*)",
            "sampling.temperature=range(0,1,0.5)",
            "~system",
        ]
    )


def test_a_preset_from_outside_the_tree_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from runner.cli.experiment import compose

    outside = tmp_path / "outside.yaml"
    outside.write_text("name: outside\nmessage: read from outside the config tree\n")
    choice = os.path.relpath(tmp_path / "outside", CONF_DIR / "system")
    with pytest.raises(ConfigError) as info:
        compose([f"system={choice}"])
    assert str(info.value) == f"system={choice}: " + PRESET_PATH.format("system", "concise")
    assert compose(["system=concise"]).system.name == "concise"


def test_a_group_folder_makes_a_key_a_preset_choice(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()  # a group named like a value key of the schema
    check_group_choices(["cache=../x"])  # a value here (the schema's cache settings)
    with pytest.raises(ConfigError) as info:
        check_group_choices(["cache=../x"], [tmp_path])
    assert str(info.value) == (
        "cache=../x: a preset name must name a file in the config tree's cache/ folder"
    )


def test_compose_and_chat_see_conf_in_the_working_directory_as_the_cli_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.cli.chat import ChatSession
    from runner.cli.experiment import compose as compose_runner

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown system preset 'pirate'"):
        ChatSession(model="echo", system="pirate")
    (tmp_path / "conf" / "system").mkdir(parents=True)
    (tmp_path / "conf" / "system" / "pirate.yaml").write_text("name: pirate\nmessage: Arr.\n")
    assert config_trees() == [tmp_path / "conf", CONF_DIR]
    assert compose_runner(["system=pirate"]).system.message == "Arr."
    assert compose_runner().system.name == "helpful"  # the packaged defaults still apply
    with ChatSession(model="echo", system="pirate") as chat:
        assert chat.config.system.message == "Arr."


def test_the_search_path_plugin_leaves_other_apps_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hydra loads plugins for every app: ./conf joins only the runner's own search path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "system").mkdir(parents=True)
    (tmp_path / "conf" / "system" / "pirate.yaml").write_text("name: pirate\nmessage: Arr.\n")
    other = tmp_path / "other-app"
    other.mkdir()
    (other / "config.yaml").write_text("greeting: hi\n")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(other), version_base="1.3"):
            assert search_path() == ["hydra.conf", str(other), ""]
            # no system group here: a new plain key, not ./conf/system/pirate.yaml
            assert compose("config", overrides=["+system=pirate"]).system == "pirate"
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            assert search_path() == ["hydra.conf", str(tmp_path / "conf"), str(CONF_DIR), ""]
            assert compose("config", overrides=["system=pirate"]).system.message == "Arr."
    finally:
        GlobalHydra.instance().clear()


def search_path() -> list[str]:
    """The config sources of the initialized Hydra, in search order."""
    return [source.path for source in GlobalHydra.instance().config_loader().get_sources()]
