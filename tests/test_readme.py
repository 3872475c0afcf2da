"""The README's quickstart stays true: CI runs it verbatim, and its run works."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli_env

README = (REPO / "README.md").read_text()
CI = (REPO / ".ci" / "run").read_text()


def quickstart() -> list[str]:
    block = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```", README, re.S)
    assert block, "README lost its quickstart block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quickstart_is_two_commands_install_and_run_then_test() -> None:
    install_and_run, test = quickstart()
    assert "pip install -e '.[dev]'" in install_and_run
    assert install_and_run.endswith("python -m runner")
    assert test == "pytest"


def test_ci_runs_the_readme_commands_verbatim() -> None:
    ci_lines = [line.strip() for line in CI.splitlines()]
    for command in quickstart():
        assert command in ci_lines
    assert "TIKTOKEN_CACHE_DIR" in CI and "rm -rf .venv" in CI


def test_the_install_section_runs_what_init_says_to_run_next() -> None:
    from runner.cli.init import NEXT_COMMAND

    block = re.search(r"## Install in your own project\n.*?```bash\n(.*?)```", README, re.S)
    assert block, "README lost its install block"
    commands = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["python -m runner init", NEXT_COMMAND]


@pytest.mark.slow
def test_the_quickstart_run_works_offline(tmp_path: Path) -> None:
    run = quickstart()[0].rsplit("&&", 1)[1].split()
    assert run == ["python", "-m", "runner"]
    done = subprocess.run(
        [
            sys.executable,
            *run[1:],
            f"hydra.run.dir={tmp_path / 'out'}",
            f"cache.dir={tmp_path / 'cache'}",
        ],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "out" / "transcript.jsonl").read_text().splitlines()) == 5


@pytest.mark.slow
def test_cookbook_commands_parse(tmp_path: Path) -> None:
    """Every cookbook line composes (``--cfg job`` prints the config and calls nothing)."""
    block = re.search(r"## Cookbook\s*```bash\n(.*?)```", README, re.S)
    assert block
    for line in block.group(1).splitlines():
        command = line.split("  #")[0].strip()
        args = command.split()[3:]
        if "--cfg" in args:
            continue
        args = [a.replace("'", "") for a in args if a != "-m"]
        if any(a.startswith("questions.path=my") for a in args):
            continue
        args = [a.replace("range(0,1.2,0.4)", "0.4") for a in args]
        args = [a.split(",")[0] if "=" in a and "," in a else a for a in args]
        done = subprocess.run(
            [sys.executable, "-m", "runner", *args, "--cfg", "job"],
            cwd=REPO,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"


@pytest.mark.slow
def test_assistant_experiment_commands_validate(tmp_path: Path) -> None:
    """Every command of the assistant-experiments section passes validation (a dry run checks
    the whole config, tools and schema included, and calls nothing)."""
    section = README.split("## Assistant experiments", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block
    commands = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    assert len(commands) == 6
    for command in commands:
        args = command.split()[3:]
        done = subprocess.run(
            [sys.executable, "-m", "runner", *args, "dry_run=true", f"hydra.sweep.dir={tmp_path}"],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
        assert "total (dry run: nothing was sent)" in done.stdout, command
