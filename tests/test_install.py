"""``pip install .`` (not editable) gives a runner that works from any directory: the packaged
config tree is in the wheel, and a user's own tree is found the Hydra way."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, cli_env
from packaging.requirements import Requirement

from runner.core.files import CONF_DIR

PIRATE = "name: pirate\nmessage: Answer as a pirate would.\n"


@dataclass
class Installed:
    """A fresh virtual env with the runner's wheel installed, and a scratch dir to run in."""

    wheel: Path
    python: Path
    site_packages: Path

    def run(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )


def _env() -> dict[str, str]:
    env = cli_env()
    env.pop("PYTHONPATH", None)  # nothing of the checkout on the path: only what was installed
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The wheel built from a copy of the checkout, installed into a fresh venv offline.

    The fresh venv sees the dev env's packages (the runner's dependencies) through a ``.pth``
    file naming that site-packages; ``.pth`` files in a directory added that way are not
    processed, so the dev env's editable install of the runner stays out of sight.
    """
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy: building writes build/ and *.egg-info into the source
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("runner", "hydra_plugins"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = root / "dist"
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("runner-*.whl")

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "dev-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield Installed(wheel, python, site)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sweep_args(out: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "runner",
        *extra,
        "-m",
        "system=helpful,pirate",
        f"hydra.sweep.dir={out}",
        f"cache.dir={out.parent / 'cache'}",
    ]


def system_messages(sweep_dir: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(sweep_dir.glob("*/transcript.jsonl")):
        for row in records(path):
            found.setdefault(row["system"], set()).add(row["system_message"])
    return found


def preset_message(group_file: Path) -> str:
    return yaml.safe_load(group_file.read_text())["message"]


@pytest.mark.slow
def test_the_wheel_requires_only_what_running_needs(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = wheel.read(name).decode()
    requires = [
        Requirement(line.split(": ", 1)[1])
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    base = {r.name.lower() for r in requires if r.marker is None}
    notebook = {
        r.name.lower()
        for r in requires
        if r.marker is not None and r.marker.evaluate({"extra": "notebook"})
    }
    assert base == {
        "hydra-core",
        "omegaconf",
        "openai",
        "tiktoken",
        "filelock",
        "aiolimiter",
        "tenacity",
        "diskcache",
        "tqdm",
        "jinja2",
        "markdown-it-py",
        "jsonschema",  # the json scorer checks answers against the response format's schema
        "lazy_loader",  # the public API loads as it is used
    }
    assert {"pandas", "ipython", "matplotlib", "ipykernel"} <= notebook
    assert "jsonlines" not in metadata


@pytest.mark.slow
def test_the_installed_runner_is_the_wheel_not_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    done = installed.run(
        tmp_path,
        "-c",
        "import runner, runner.core.files as c;"
        "import hydra_plugins.runner_searchpath.runner_searchpath as s;"
        "print(runner.__file__); print(c.CONF_DIR); print(s.__file__)",
    )
    assert done.returncode == 0, done.stderr
    runner_file, conf_dir, plugin_file = (Path(line) for line in done.stdout.splitlines())
    for path in (runner_file, conf_dir, plugin_file):
        assert path.is_relative_to(installed.site_packages), path
    # every file of the tree is there, comments and question data included, byte for byte
    packaged = sorted(p.relative_to(CONF_DIR) for p in CONF_DIR.rglob("*") if p.is_file())
    assert sorted(p.relative_to(conf_dir) for p in conf_dir.rglob("*") if p.is_file()) == packaged
    for path in packaged:
        assert (conf_dir / path).read_bytes() == (CONF_DIR / path).read_bytes(), path
    assert Path("questions/data/trivia.jsonl") in packaged


@pytest.mark.slow
def test_a_sweep_from_any_directory_with_a_config_dir_then_with_conf(
    installed: Installed, tmp_path: Path
) -> None:
    mine = tmp_path / "my-presets"
    (mine / "system").mkdir(parents=True)
    (mine / "system" / "pirate.yaml").write_text(PIRATE)
    work = tmp_path / "work"
    work.mkdir()
    expected = {
        "helpful": {preset_message(CONF_DIR / "system" / "helpful.yaml")},
        "pirate": {"Answer as a pirate would."},
    }

    done = installed.run(work, *sweep_args(work / "with-config-dir", "--config-dir", str(mine)))
    assert done.returncode == 0, done.stderr
    assert system_messages(work / "with-config-dir") == expected

    shutil.copytree(mine, work / "conf")  # the same presets as ./conf: no flag needed
    done = installed.run(work, *sweep_args(work / "with-conf"))
    assert done.returncode == 0, done.stderr
    assert system_messages(work / "with-conf") == expected
    assert [len(records(p)) for p in sorted((work / "with-conf").glob("*/transcript.jsonl"))] == [
        5,
        5,
    ]


@pytest.mark.slow
def test_the_packaged_question_file_resolves_from_any_directory(
    installed: Installed, tmp_path: Path
) -> None:
    done = installed.run(
        tmp_path,
        "-m",
        "runner",
        "questions=trivia_file",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"cache.dir={tmp_path / 'cache'}",
    )
    assert done.returncode == 0, done.stderr
    rows = records(tmp_path / "run" / "transcript.jsonl")
    assert len(rows) == 10 and {r["question_set"] for r in rows} == {"trivia_file"}


@pytest.mark.slow
def test_init_then_run_a_preset_of_the_new_tree(installed: Installed, tmp_path: Path) -> None:
    done = installed.run(tmp_path, "-m", "runner", "init")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "next: python -m runner system=tutor questions=starter"
    run = installed.run(
        tmp_path,
        "-m",
        "runner",
        "system=tutor",
        "questions=starter",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"cache.dir={tmp_path / 'cache'}",
    )
    assert run.returncode == 0, run.stderr
    rows = records(tmp_path / "run" / "transcript.jsonl")
    assert {r["system"] for r in rows} == {"tutor"} and {r["question_set"] for r in rows} == {
        "starter"
    }
    assert sorted((r["conversation_id"], r["turn"]) for r in rows) == [
        ("boiling", 1),
        ("fractions", 1),
        ("fractions", 2),
        ("planet", 1),
    ]


def test_load_results_without_pandas_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from runner import load_results

    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails, as uninstalled
    with pytest.raises(ModuleNotFoundError) as caught:
        load_results(tmp_path)
    assert str(caught.value) == (
        "load_results needs pandas, which is not installed: pip install 'runner[notebook]'"
    )
