"""Planning a job: a single run is checked and planned once as it starts, and its files are
found in the config trees it was composed from, not through Hydra's global state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

from runner.base.errors import ConfigError, QuestionsError
from runner.base.schema import QuestionSet
from runner.cli.experiment import compose
from runner.core.files import CONF_DIR, config_trees
from runner.core.plan import JobInfo, plan_job
from runner.core.questions import load_conversations
from runner.core.validation import validate

COUNT_PLANS = """
import sys
import runner.cli.callbacks as callbacks, runner.cli.main as main, runner.core.plan as plan
calls = []
def counting(*args, **kwargs):
    calls.append(1)
    return plan.plan_job(*args, **kwargs)
callbacks.plan_job = main.plan_job = counting
sys.argv = ["runner", *sys.argv[1:]]
try:
    main.main()
finally:
    print("plans:", len(calls))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "plans"),
    [([], 1), (["system.message='asked at ${now:%H}'"], 2)],
    ids=["plain", "interpolated"],
)
def test_a_single_run_is_planned_once(tmp_path: Path, extra: list[str], plans: int) -> None:
    """A config with an interpolation may resolve otherwise as the job runs: planned again."""
    args = [f"hydra.run.dir={tmp_path / 'run'}", "cache.enabled=false", "progress=false", *extra]
    done = subprocess.run(
        [sys.executable, "-c", COUNT_PLANS, *args],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"plans: {plans}"
    assert len((tmp_path / "run" / "transcript.jsonl").read_text().splitlines()) == 5


def test_files_are_found_in_the_trees_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "elsewhere"
    (mine / "questions").mkdir(parents=True)
    (mine / "questions" / "mine.jsonl").write_text('{"id": "x", "question": "Mine?"}\n')
    questions = QuestionSet(name="mine", path="questions/mine.jsonl")
    with pytest.raises(QuestionsError, match=r"questions file questions/mine\.jsonl not found"):
        load_conversations(questions)  # the trees of a run started here: ./conf, the packaged
    (found,) = load_conversations(questions, [mine, CONF_DIR])
    assert found.id == "x"
    run = validate(compose(["questions=trivia_file"]))
    plan = plan_job(run, JobInfo(output_dir=tmp_path), trees=config_trees())
    assert len(plan.conversations) > 1  # the packaged tree is searched last, always
    run.response_format.type = "json_schema"
    run.response_format.schema_path = "nope.json"
    with pytest.raises(ConfigError, match=r"^response_format\.schema_path='nope\.json' not found"):
        plan_job(run, JobInfo(output_dir=tmp_path), trees=config_trees([mine]))


def test_a_refused_start_leaves_the_jobs_facts_as_they_were(tmp_path: Path) -> None:
    """job.json is the transcript's: a run that may not write there does not rewrite it."""
    from runner.base.jobfile import read_job_facts
    from runner.cli.experiment import run_job

    run_job(["failed_score=0.25", "cache.enabled=false"], tmp_path)
    with pytest.raises(ConfigError, match="already holds records: pass resume=true"):
        run_job(["failed_score=0.75", "questions=math_chat", "cache.enabled=false"], tmp_path)
    facts = read_job_facts(tmp_path)
    assert facts is not None
    assert (facts.failed_score, facts.question_set) == (0.25, "capitals")
    run_job(["failed_score=0.25", "cache.enabled=false", "resume=true"], tmp_path)
    facts = read_job_facts(tmp_path)
    assert facts is not None and facts.overrides == ["failed_score=0.25"]
