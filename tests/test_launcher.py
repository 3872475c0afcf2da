"""The runner launcher's composition of a sweep's jobs equals Hydra's own, file for file."""

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pytest
import yaml
from conftest import FAKE_KEY, REPO, Cli, cli_env, fake_model
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf, open_dict, read_write

from hydra_plugins.runner_launcher.job_setup import clone, plain, task_config
from hydra_plugins.runner_launcher.runner_launcher import SweepComposer, _InFlight
from runner.cli.hydra_setup import register_schema
from runner.core.files import CONF_DIR

MASTER = [
    "hydra.sweep.dir=/tmp/sweep",
    "hydra.sweep.subdir=${hydra.job.override_dirname}",
    "hydra.job.config.override_dirname.exclude_keys=[cache.enabled]",
]
GRID = [
    "model=echo,gpt-4.1-mini",
    "system=helpful,concise",
    "sampling=default,deterministic",
    "sampling.seed=1,2,3",
    "+new.key=3",
    "+extra.a=1",
    "~extra.a",
    "model.base_url=http://${model.name}.local:8000/v1",
    "max_history=${concurrency}",
    "cache.enabled=false",
]


class Counting:
    """Hydra's ``load_sweep_config``, counting how often it composes."""

    def __init__(self, loader) -> None:
        self.compose = loader.load_sweep_config
        self.calls = 0

    def __call__(self, master: DictConfig, overrides: list[str]) -> DictConfig:
        self.calls += 1
        return self.compose(master, overrides)


@pytest.fixture
def loader() -> Iterator:
    register_schema()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()
    GlobalHydra.instance().clear()


def jobs(grid: list[str]) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper lists them."""
    parsed = OverridesParser.create().parse_overrides(grid)
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return batch


def hydra_files(cfg: DictConfig, num: int) -> dict[str, str]:
    """What ``hydra.core.utils.run_job`` writes into a job's ``.hydra/``."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.hydra.job.id = num
        cfg.hydra.job.num = num
    HydraConfig.instance().set_config(cfg)
    with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = str(
            Path(str(cfg.hydra.sweep.dir)) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        )
    HydraConfig.instance().set_config(cfg)
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    files = {
        "config.yaml": OmegaConf.to_yaml(task),
        "hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),
        "overrides.yaml": OmegaConf.to_yaml(cfg.hydra.overrides.task),
        "resolved": OmegaConf.to_yaml(task, resolve=True),
    }
    HydraConfig.instance().cfg = None  # type: ignore[assignment]
    return files


def test_every_job_composes_as_hydra_composes_it(loader) -> None:
    master = loader.load_configuration("config", MASTER, RunMode.MULTIRUN)
    counting = Counting(loader)
    composer = SweepComposer(counting, loader)
    batch = jobs(GRID)
    assert len(batch) == 2 * 2 * 2 * 3
    for num, overrides in enumerate(batch):
        theirs = loader.load_sweep_config(master, list(overrides))
        ours = composer.compose(master, list(overrides))
        assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(theirs), overrides
        assert ours == theirs
        assert ours.new.key == 3 and "a" not in ours.extra
        assert ours.hydra.overrides.task == list(overrides)
        assert OmegaConf.is_struct(ours) and not OmegaConf.is_readonly(ours.hydra)
        assert hydra_files(ours, num) == hydra_files(theirs, num), overrides
    # one composition by Hydra for each choice of presets, not one a job
    assert counting.calls == 2 * 2 * 2


def test_the_override_dirname_and_subdir_follow_each_job(loader) -> None:
    master = loader.load_configuration("config", MASTER, RunMode.MULTIRUN)
    composer = SweepComposer(loader.load_sweep_config, loader)
    cfg = composer.compose(master, ["system=concise", "sampling.seed=2", "cache.enabled=false"])
    assert cfg.hydra.job.override_dirname == "sampling.seed=2,system=concise"
    assert cfg.hydra.runtime.choices.system == "concise"
    assert OmegaConf.select(cfg, "hydra.sweep.subdir") == "sampling.seed=2,system=concise"


@pytest.mark.parametrize(
    "override",
    ["sampling.sed=3", "+sampling.seed=3", "~extra.b", "system=nosuchpreset"],
)
def test_a_bad_override_gets_hydras_own_error(loader, override: str) -> None:
    master = loader.load_configuration("config", MASTER, RunMode.MULTIRUN)
    composer = SweepComposer(loader.load_sweep_config, loader)
    with pytest.raises(ConfigCompositionException) as theirs:
        loader.load_sweep_config(master, ["sampling.seed=1", override])
    with pytest.raises(ConfigCompositionException) as ours:
        composer.compose(master, ["sampling.seed=1", override])
    assert str(ours.value) == str(theirs.value)


def test_keys_hydra_sets_itself_go_through_hydras_composition(loader) -> None:
    master = loader.load_configuration("config", MASTER, RunMode.MULTIRUN)
    counting = Counting(loader)
    composer = SweepComposer(counting, loader)
    overrides = ["sampling.seed=1", "hydra.job.name=other"]
    ours = composer.compose(master, overrides)
    assert counting.calls == 1  # the job itself, not a preset choice
    assert ours == loader.load_sweep_config(master, overrides)
    assert ours.hydra.job.name == "other"


@pytest.mark.slow
def test_a_sweep_writes_each_jobs_hydra_files_as_hydra_does(tmp_path: Path) -> None:
    """The same sweep under Hydra's basic launcher and the runner launcher: the same files
    (the same YAML; libyaml may fold a long quoted string's lines elsewhere)."""
    grid = ["system=helpful,concise", "sampling.seed=1,2", "max_history=${concurrency}"]
    dirs = {}
    for launcher in ("basic", "runner"):
        cli = Cli(tmp_path / launcher)
        cli.tmp.mkdir()
        done = cli("-m", *grid, f"hydra/launcher={launcher}", "progress=false", env=cli_env())
        assert done.returncode == 0, done.stderr
        dirs[launcher] = cli.sweep_dir
    for job in range(4):
        for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
            basic = _hydra_file(dirs["basic"] / str(job) / ".hydra" / name, tmp_path / "basic")
            ours = _hydra_file(dirs["runner"] / str(job) / ".hydra" / name, tmp_path / "runner")
            # the launcher is the one thing told apart, and the dirs that hold each sweep
            basic = basic.replace('"hydra/launcher": "basic"', '"hydra/launcher": "runner"')
            basic = basic.replace('"hydra/launcher=basic"', '"hydra/launcher=runner"')
            assert ours == basic, (job, name)
        assert (dirs["runner"] / str(job) / "transcript.jsonl").exists()
        assert list((dirs["runner"] / str(job)).glob("*.log"))


def _hydra_file(path: Path, root: Path) -> str:
    """A ``.hydra`` file's content as JSON, the sweep's own dir as ``TMP``, without the
    ``hydra.launcher`` node (its settings differ by launcher)."""
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(content, dict) and "hydra" in content:
        del content["hydra"]["launcher"]
    return json.dumps(content).replace(json.dumps(str(root))[1:-1], "TMP")


def test_hydra_files_hold_the_yaml_hydra_writes(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from hydra_plugins.runner_launcher.job_setup import save_yaml

    node = OmegaConf.create(
        {
            "flags": ["true", "1.0", "1e5", "yes", "null", "???", ""],
            "text": "two\n\nlines: [not, a, key] # not a comment " * 4 + "😀",
            "nested": {"none": None, "number": 2.5, "interpolation": "${flags}"},
        }
    )
    save_yaml(node, "config.yaml", tmp_path / ".hydra")
    text = (tmp_path / ".hydra" / "config.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(text) == yaml.safe_load(OmegaConf.to_yaml(node))
    assert text.startswith("flags:\n- 'true'\n- '1.0'\n- '1e5'\n- 'yes'\n- 'null'\n- ???\n- ''\n")


def _nodes(node, path: str = "") -> Iterator[tuple[str, object]]:
    yield path, node
    if isinstance(node, DictConfig | ListConfig) and not node._is_none() and not node._is_missing():
        keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
        for key in keys:
            yield from _nodes(node._get_node(key), f"{path}/{key}")


def _count(value: object) -> int:
    """Nodes in a plain container: itself, and every value in it at any depth."""
    if isinstance(value, dict):
        return 1 + sum(_count(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_count(v) for v in value)
    return 1


def test_clone_is_a_deep_copy(loader) -> None:
    master = loader.load_configuration("config", MASTER, RunMode.MULTIRUN)
    cfg = loader.load_sweep_config(master, ["+new.key=[1,{a: 2}]", "max_history=${concurrency}"])
    OmegaConf.set_readonly(cfg.hydra, True)
    ours, theirs = clone(cfg), copy.deepcopy(cfg)
    assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(theirs) and ours == theirs
    assert OmegaConf.get_type(ours) is OmegaConf.get_type(theirs)
    assert ours.max_history == 16
    pairs = list(zip(_nodes(ours), _nodes(theirs), _nodes(cfg), strict=True))
    assert len(pairs) == _count(OmegaConf.to_container(cfg, resolve=False))  # every node
    for (path, a), (_, b), (_, src) in pairs:
        assert type(a) is type(b) and a is not src, path
        assert a._metadata == b._metadata and a._metadata is not src._metadata, path
        assert a._metadata.flags is not src._metadata.flags, path
        assert a._get_flag("readonly") == b._get_flag("readonly"), path
        if path:
            assert a._get_parent() is not src._get_parent()
    with open_dict(ours):
        ours.new.key[1].a = 3
        ours.model.name = "other"
    assert cfg.new.key[1].a == 2 and cfg.model.name == theirs.model.name
    task = task_config(cfg)
    assert "hydra" not in task and "hydra" in cfg
    assert OmegaConf.to_yaml(task) == OmegaConf.to_yaml(OmegaConf.masked_copy(theirs, list(task)))


def test_jobs_are_set_up_as_the_calls_before_them_finish() -> None:
    small = _InFlight(room=10)
    for _ in range(3):
        small.add(3)
    assert small.has_room(1) and not small.has_room(2)
    small.done(3)()
    assert small.has_room(4) and not small.has_room(5)
    # jobs larger than the room: two at a time, so the next one's calls queue behind the last
    # ones of the first
    large = _InFlight(room=10)
    assert large.has_room(1000)
    large.add(1000)
    assert large.has_room(1000)
    large.add(1000)
    assert not large.has_room(1)
    large.done(1000)()
    assert large.has_room(1000)


class Colour(Enum):
    RED = 1


@dataclass
class Painted:
    colour: Colour = Colour.RED
    path: Path = Path("a/b")
    data: bytes = b"\x00"
    missing: int = MISSING
    none: dict[str, int] | None = None


def test_plain_is_omegaconfs_container_unresolved(loader) -> None:
    master = loader.load_configuration("config", MASTER, RunMode.MULTIRUN)
    cfg = loader.load_sweep_config(master, ["+new.key=[1,{a: 2}]", "max_history=${concurrency}"])
    odd = OmegaConf.create(
        {
            "painted": Painted,
            "by_colour": {Colour.RED: "${painted.colour}"},
            "missing_list": "???",
            "interpolated_dict": "${painted}",
            "none_list": ListConfig(None),
            "items": [None, "???", "${by_colour}", 1.5, True, [{"x": []}]],
        }
    )
    for node in (cfg, cfg.hydra, task_config(cfg), cfg.hydra.overrides.task, odd):
        theirs = OmegaConf.to_container(node, resolve=False, enum_to_str=True)
        ours = plain(node)
        assert ours == theirs and repr(ours) == repr(theirs)
    assert plain(odd)["by_colour"] == {"RED": "${painted.colour}"}
    assert plain(odd)["painted"]["colour"] == "RED" and plain(odd)["painted"]["missing"] == "???"


@pytest.mark.slow
def test_calls_start_once_the_jobs_set_up_can_fill_every_slot(cli: Cli, fake_server) -> None:
    """With 2 slots, the first job's 5 calls fill them twice over: they go out while the other
    jobs are set up, and every job still gets its callbacks, files and records."""
    env = cli_env(
        OPENAI_API_KEY=FAKE_KEY, PYTHONPATH=str(REPO / "tests"), PROBE_START_DELAY_S="1.5"
    )
    done = cli(
        "-m",
        *fake_model(fake_server),
        "sampling.seed=1,2,3",
        "concurrency=2",
        "+hydra.callbacks.probe._target_=sweep_probe.Probe",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    starts = [
        json.loads((cli.sweep_dir / str(job) / "probe_start.json").read_text())["at"]
        for job in range(3)
    ]
    assert len(fake_server.arrivals) == 15
    # job 0's calls went out while jobs 1 and 2 were set up (3 s of it; the first call also
    # imports the openai SDK)
    assert starts[0] < min(fake_server.arrivals) < starts[2]
    for job in range(3):
        job_dir = cli.sweep_dir / str(job)
        probe = json.loads((job_dir / "probe.json").read_text())
        assert probe["status"] == "COMPLETED" and probe["records_at_job_end"] == 5
        assert Path(probe["hydra_output_dir"]) == job_dir
        assert sorted(p.name for p in (job_dir / ".hydra").iterdir()) == [
            "config.yaml",
            "hydra.yaml",
            "overrides.yaml",
        ]
        assert f"seed: {job + 1}\n" in (job_dir / ".hydra" / "config.yaml").read_text()
    assert (cli.sweep_dir / "probe_multirun_end").read_text() == "done"
