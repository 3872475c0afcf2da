"""load_results: run dirs, sweep dirs and lists of them into one DataFrame."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from runner.analysis.results import load_results
from runner.base.errors import ResultsError
from runner.base.record import CallError, TokenUsage, TranscriptRecord
from runner.base.transcript import TRANSCRIPT_NAME, TranscriptWriter

DATA = Path(__file__).parent / "data" / "results"
START = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
SYSTEM_MESSAGES = {
    "concise": "Answer in as few words as possible. Give only the answer, with no explanation.",
    "helpful": "You are a helpful assistant.",
}
CAPITALS = [
    ("france", "What is the capital of France?", "Paris"),
    ("japan", "What is the capital of Japan?", "Tokyo"),
]
SWEEP = [  # job number -> overrides, as Hydra's multirun launcher passes them
    ["model=echo", "system=concise", "sampling.temperature=0"],
    ["model=echo", "system=concise", "sampling.temperature=0.7"],
    ["model=echo", "system=helpful", "sampling.temperature=0"],
    ["model=echo", "system=helpful", "sampling.temperature=0.7"],
]
USAGE_FIELDS = [f"usage.{f.name}" for f in dataclasses.fields(TokenUsage)]
ERROR_FIELDS = [f"error.{f.name}" for f in dataclasses.fields(CallError)]


def make_record(
    *,
    job: int | None,
    overrides: list[str],
    item: int = 0,
    model: str = "echo",
    system: str = "helpful",
    params: dict[str, Any] | None = None,
    error: CallError | None = None,
) -> dict[str, Any]:
    """One record as the engine writes it, with every field of the contract."""
    conversation_id, question, expected = CAPITALS[item]
    system_message = SYSTEM_MESSAGES[system]
    answer = None if error else f"{expected}."
    messages = [
        {"role": "system", "content": system_message},
        {"role": "user", "content": question},
    ]
    key = f"{job}|{' '.join(overrides)}|{conversation_id}|1"
    offline = model == "echo"
    if error:
        usage = TokenUsage(prompt_tokens=31 + item, source="estimate")
    else:
        completion = 2 + (job or 0)
        usage = TokenUsage(31 + item, completion, 33 + item + (job or 0))
    return TranscriptRecord(
        record_id=hashlib.sha256(key.encode()).hexdigest()[:16],
        job=job,
        overrides=overrides,
        created_at=(START + timedelta(seconds=item, microseconds=250_000 * item)).isoformat(),
        model=model,
        base_url=None if offline else "http://localhost:11434/v1",
        offline=offline,
        system=system,
        system_message=system_message,
        params={} if params is None else params,
        question_set="capitals",
        conversation_id=conversation_id,
        turn=1,
        question=question,
        answer=answer,
        expected=expected,
        messages=messages,
        dropped_messages=0,
        usage=usage,
        estimated_prompt_tokens=31 + item,
        token_count_method="tiktoken:o200k_base",
        cost_usd=0.0 if offline else None,
        latency_s=None if error else 0.002,
        ttft_s=None,
        attempts=6 if error else 1,
        cache_hit=False,
        finish_reason=None if error else "stop",
        response_id=None if error else f"echo-{conversation_id}",
        served_model=None if error else model,
        system_fingerprint=None,
        error=error,
        score=None if error else 1.0,
    ).to_dict()


def write_transcript(directory: Path, records: list[dict[str, Any]]) -> Path:
    path = directory / TRANSCRIPT_NAME
    with TranscriptWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


def write_run(directory: Path, overrides: list[str], job: int | None = None, **fields: Any) -> Path:
    """A job dir holding two records (one per question) and Hydra's .hydra/ dir."""
    (directory / ".hydra").mkdir(parents=True, exist_ok=True)
    (directory / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {item}\n" for item in overrides), encoding="utf-8"
    )
    records = [make_record(job=job, overrides=overrides, item=i, **fields) for i in range(2)]
    return write_transcript(directory, records)


def temperature(overrides: list[str]) -> float:
    return float(next(o for o in overrides if o.startswith("sampling.temperature=")).split("=")[1])


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """A sweep over system and temperature: jobs 0..3 and Hydra's multirun.yaml."""
    root = tmp_path / "multirun" / "2026-11-20" / "10-00-00"
    root.mkdir(parents=True)
    shutil.copy(DATA / "multirun.yaml", root / "multirun.yaml")
    for job, overrides in enumerate(SWEEP):
        system = overrides[1].split("=")[1]
        params = {"temperature": temperature(overrides)}
        write_run(root / str(job), overrides, job=job, system=system, params=params)
    return root


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "outputs" / "2026-11-20" / "09-00-00"
    write_run(directory, ["system=concise"], system="concise")
    return directory


def test_run_dir(run_dir: Path) -> None:
    df = load_results(run_dir)
    assert len(df) == 2
    assert df["conversation_id"].tolist() == ["france", "japan"]
    assert df["job_dir"].tolist() == [str(run_dir)] * 2
    assert df.attrs["swept_keys"] == ["system"]
    assert df.attrs["swept_columns"] == {"system": "system"}


def test_every_record_field_is_a_column(run_dir: Path) -> None:
    df = load_results(run_dir)
    for name in (f.name for f in dataclasses.fields(TranscriptRecord)):
        if name in ("usage", "error", "params", "extra"):
            continue
        assert name in df.columns
    assert set(USAGE_FIELDS + ERROR_FIELDS) <= set(df.columns)
    assert "usage" not in df.columns
    assert "error" not in df.columns


def test_sweep_dir(sweep_dir: Path) -> None:
    df = load_results(sweep_dir)
    assert len(df) == 8
    assert df["job"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert df["job_dir"].tolist() == [str(sweep_dir / str(j)) for j in (0, 0, 1, 1, 2, 2, 3, 3)]
    assert df.attrs["swept_keys"] == ["model", "system", "sampling.temperature"]


def test_list_of_run_dirs_keeps_the_order_given(tmp_path: Path) -> None:
    first = tmp_path / "outputs" / "2026-11-20" / "11-00-00"
    second = tmp_path / "outputs" / "2026-11-20" / "10-00-00"
    write_run(first, ["system=concise"], system="concise")
    write_run(second, ["system=helpful"], system="helpful")
    df = load_results([first, str(second)])
    assert df["job_dir"].tolist() == [str(first)] * 2 + [str(second)] * 2
    assert df["system"].tolist() == ["concise", "concise", "helpful", "helpful"]


def test_transcript_file(run_dir: Path) -> None:
    df = load_results(run_dir / TRANSCRIPT_NAME)
    assert len(df) == 2
    assert df["job_dir"].tolist() == [str(run_dir)] * 2


def test_a_transcript_reached_twice_is_read_once(sweep_dir: Path) -> None:
    df = load_results([sweep_dir / "2", sweep_dir])
    assert df["job"].tolist() == [2, 2, 0, 0, 1, 1, 3, 3]


def test_jobs_in_natural_order(tmp_path: Path) -> None:
    for job in range(12):
        job_dir = tmp_path / str(job)
        overrides = [f"sampling.seed={job}"]
        write_transcript(job_dir, [make_record(job=job, overrides=overrides)])
    df = load_results(tmp_path)
    assert df["job"].tolist() == list(range(12))
    assert df["sampling.seed"].tolist() == list(range(12))


def test_transcripts_at_any_depth(sweep_dir: Path) -> None:
    df = load_results(sweep_dir.parent.parent)  # multirun/
    assert len(df) == 8


def test_nested_fields_are_flattened_and_numeric(sweep_dir: Path) -> None:
    df = load_results(sweep_dir)
    assert pd.api.types.is_numeric_dtype(df["usage.prompt_tokens"])
    assert pd.api.types.is_numeric_dtype(df["params.temperature"])
    assert pd.api.types.is_numeric_dtype(df["cost_usd"])
    assert df["usage.prompt_tokens"].tolist() == [31, 32] * 4
    assert df["params.temperature"].tolist() == [0.0, 0.0, 0.7, 0.7] * 2
    assert set(df["usage.source"]) == {"api"}
    assert df["error.type"].isna().all()


def test_lists_stay_python_objects(run_dir: Path) -> None:
    df = load_results(run_dir)
    assert df["overrides"].iloc[0] == ["system=concise"]
    messages = df["messages"].iloc[1]
    assert messages[1] == {"role": "user", "content": "What is the capital of Japan?"}


def test_params_with_different_keys_get_a_column_each(tmp_path: Path) -> None:
    write_run(tmp_path / "0", ["sampling=default"], job=0, params={"temperature": 0.2})
    write_run(tmp_path / "1", ["sampling=reasoning"], job=1, params={"max_tokens": 64, "seed": 7})
    df = load_results(tmp_path)
    assert df["params.temperature"].tolist()[:2] == [0.2, 0.2]
    assert df["params.temperature"].iloc[2:].isna().all()
    assert df["params.max_tokens"].iloc[2:].tolist() == [64, 64]
    assert df["params.seed"].iloc[:2].isna().all()


def test_created_at_is_a_utc_datetime(run_dir: Path) -> None:
    df = load_results(run_dir)
    assert isinstance(df["created_at"].dtype, pd.DatetimeTZDtype)
    assert str(df["created_at"].dt.tz) == "UTC"
    assert df["created_at"].iloc[1] == pd.Timestamp("2026-11-20T10:00:01.25Z")


def test_swept_values_are_typed(sweep_dir: Path) -> None:
    df = load_results(sweep_dir)
    assert df["sampling.temperature"].dtype == "float64"
    assert df["sampling.temperature"].tolist() == [0.0, 0.0, 0.7, 0.7] * 2


def test_override_syntax(tmp_path: Path) -> None:
    overrides = [
        "+tag=1",
        "++note=null",
        "~max_history",
        "hydra.job.chdir=true",
        "hydra/launcher=basic",
        "sampling.stop=[a,b]",
        "sampling.top_p=1e-1",
        "resume=true",
        "questions=trivia_file",
        "label=yes",
    ]
    write_run(tmp_path, overrides)
    df = load_results(tmp_path)
    assert df.attrs["swept_keys"] == [
        "tag",
        "note",
        "sampling.stop",
        "sampling.top_p",
        "resume",
        "questions",
        "label",
    ]
    row = df.iloc[0]
    assert row["tag"] == 1
    assert row["note"] is None
    assert row["sampling.stop"] == "[a,b]"
    assert row["sampling.top_p"] == pytest.approx(0.1)
    assert df["resume"].dtype == bool
    assert row["resume"]
    assert row["questions"] == "trivia_file"
    assert row["label"] == "yes"
    assert not {"max_history", "hydra.job.chdir", "hydra/launcher"} & set(df.columns)


def test_swept_key_equal_to_record_column_adds_no_column(sweep_dir: Path) -> None:
    df = load_results(sweep_dir)
    assert "sweep.model" not in df.columns
    assert "sweep.system" not in df.columns
    assert df.attrs["swept_columns"] == {
        "model": "model",
        "system": "system",
        "sampling.temperature": "sampling.temperature",
    }


def test_swept_key_differing_from_record_column(tmp_path: Path) -> None:
    # The override names the preset (conf/model/ollama.yaml); the record names the model.
    write_run(tmp_path / "0", ["model=echo"], job=0, model="echo")
    write_run(tmp_path / "1", ["model=ollama"], job=1, model="llama3.2")
    df = load_results(tmp_path)
    assert df["model"].tolist() == ["echo", "echo", "llama3.2", "llama3.2"]
    assert df["sweep.model"].tolist() == ["echo", "echo", "ollama", "ollama"]
    assert df.attrs["swept_columns"] == {"model": "sweep.model"}


def test_key_absent_from_some_jobs_is_none(tmp_path: Path) -> None:
    write_run(tmp_path / "0", ["system=concise"], job=0, system="concise")
    write_run(tmp_path / "1", ["system=concise", "sampling.seed=7"], job=1, system="concise")
    df = load_results(tmp_path)
    assert df["sampling.seed"].iloc[:2].isna().all()
    assert df["sampling.seed"].iloc[2:].tolist() == [7, 7]


def test_pivot_by_swept_keys(sweep_dir: Path) -> None:
    df = load_results(sweep_dir)
    table = df.pivot_table(
        index="system",
        columns="sampling.temperature",
        values="usage.completion_tokens",
        aggfunc="mean",
    )
    assert table.columns.tolist() == [0.0, 0.7]
    assert table.loc["concise", 0.0] == 2  # job 0
    assert table.loc["helpful", 0.7] == 5  # job 3


def test_error_record(tmp_path: Path) -> None:
    error = CallError(type="RateLimitError", message="429 Too Many Requests", status=429)
    write_transcript(
        tmp_path,
        [
            make_record(job=None, overrides=[], item=0),
            make_record(job=None, overrides=[], item=1, error=error),
        ],
    )
    df = load_results(tmp_path)
    assert df["error.type"].isna().tolist() == [True, False]
    failed = df.iloc[1]
    assert failed["error.type"] == "RateLimitError"
    assert failed["error.message"] == "429 Too Many Requests"
    assert failed["error.status"] == 429
    assert failed["usage.source"] == "estimate"
    assert pd.isna(failed["answer"])
    assert len(df[df["error.type"].isna()]) == 1
    assert df.attrs["swept_keys"] == []


def test_torn_last_line_is_skipped_with_a_warning(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = run_dir / TRANSCRIPT_NAME
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"record_id": "9f2c", "job": null, "overrides": ["syst')
    with caplog.at_level(logging.WARNING, logger="runner.base.transcript"):
        df = load_results(run_dir)
    assert len(df) == 2
    assert f"{path}: skipping torn last line 3" in caplog.text


def test_golden_interrupted_run(caplog: pytest.LogCaptureFixture) -> None:
    """A committed transcript of a run killed mid-write: two records and a torn third line."""
    with caplog.at_level(logging.WARNING, logger="runner.base.transcript"):
        df = load_results(DATA / "interrupted")
    assert df["conversation_id"].tolist() == ["france", "japan"]
    assert df["usage.total_tokens"].tolist() == [33, 34]
    assert df.attrs["swept_keys"] == ["model", "system"]
    assert "skipping torn last line 3" in caplog.text


def test_torn_middle_line_raises(run_dir: Path) -> None:
    path = run_dir / TRANSCRIPT_NAME
    first, second = path.read_text(encoding="utf-8").splitlines()
    path.write_text(f"{first}\n{second[:40]}\n{second}\n", encoding="utf-8")
    with pytest.raises(ResultsError, match="line 2") as info:
        load_results(run_dir)
    assert str(path) in str(info.value)


def test_missing_path_raises(tmp_path: Path) -> None:
    missing = tmp_path / "outputs" / "nope"
    with pytest.raises(ResultsError) as info:
        load_results(missing)
    assert str(info.value) == (
        f"{missing}: no such file or directory; pass a run dir, a sweep dir or a transcript.jsonl"
    )


def test_missing_path_in_a_list_raises(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such file or directory"):
        load_results([run_dir, tmp_path / "nope"])


def test_dir_without_transcript_raises(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    with pytest.raises(ResultsError) as info:
        load_results(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: no transcript.jsonl")
    assert "Hydra output dir" in message


def test_no_path_raises() -> None:
    with pytest.raises(ResultsError, match="no path given"):
        load_results([])


def test_empty_transcripts_give_an_empty_frame_with_columns(tmp_path: Path) -> None:
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / TRANSCRIPT_NAME).touch()
    df = load_results(tmp_path)
    assert len(df) == 0
    assert {"record_id", "job", "model", "system", "overrides", "job_dir"} <= set(df.columns)
    assert set(USAGE_FIELDS + ERROR_FIELDS) <= set(df.columns)
    assert df.attrs["swept_keys"] == []


def test_empty_transcript_among_others_adds_no_rows(sweep_dir: Path) -> None:
    (sweep_dir / "4").mkdir()
    (sweep_dir / "4" / TRANSCRIPT_NAME).touch()
    assert len(load_results(sweep_dir)) == 8


def test_importing_results_does_not_import_pandas() -> None:
    code = "import sys, runner.analysis.results; sys.exit('pandas' in sys.modules)"
    repo = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo, check=False).returncode == 0


def test_whole_numbers_are_nullable_integers(tmp_path: Path) -> None:
    error = CallError(type="RateLimitError", message="429 Too Many Requests", status=429)
    retried = make_record(job=None, overrides=[], item=0)
    retried["retried_usage"] = {"prompt_tokens": 31, "completion_tokens": 5, "source": "estimate"}
    write_transcript(tmp_path, [retried, make_record(job=None, overrides=[], item=1, error=error)])
    df = load_results(tmp_path)
    for column in (
        "job",
        "turn",
        "step",
        "sample",
        "choice",
        "attempts",
        "dropped_messages",
        "estimated_prompt_tokens",
        "error.status",
        *[c for c in USAGE_FIELDS if c.endswith("_tokens")],
        "retried_usage.prompt_tokens",
        "retried_usage.completion_tokens",
    ):
        assert df[column].dtype == "Int64", column
    # a missing count stays missing instead of turning the column into floats
    assert df["usage.completion_tokens"].tolist() == [2, pd.NA]
    assert df["error.status"].tolist() == [pd.NA, 429]
    assert df["retried_usage.completion_tokens"].tolist() == [5, pd.NA]
    assert df["job"].isna().all()


def test_question_key_and_final(tmp_path: Path) -> None:
    step = make_record(job=0, overrides=[], item=0)
    step.update(record_id="step0", answer="", score=None, tool_calls=[{"id": "call_1"}])
    answer = make_record(job=0, overrides=[], item=0)
    answer.update(step=1)
    write_transcript(tmp_path, [step, answer, make_record(job=0, overrides=[], item=1)])
    df = load_results(tmp_path)
    assert df["question_key"].tolist() == ["france#1", "france#1", "japan#1"]
    assert df["final"].tolist() == [False, True, True]
    assert df["final"].dtype == bool


def test_config_labels_and_varying_keys(sweep_dir: Path) -> None:
    df = load_results(sweep_dir)
    assert df["config"].tolist()[::2] == [
        "system=concise sampling.temperature=0",
        "system=concise sampling.temperature=0.7",
        "system=helpful sampling.temperature=0",
        "system=helpful sampling.temperature=0.7",
    ]
    assert df.attrs["varying"] == ["system", "sampling.temperature"]
    assert df.attrs["constant"] == {"model": "echo"}
    # a pivot by question across configurations
    table = df.pivot_table(index="question_key", columns="config", values="score")
    assert table.shape == (2, 4)


def test_config_label_of_a_single_job_names_what_it_sets(run_dir: Path) -> None:
    df = load_results(run_dir)
    assert set(df["config"]) == {"system=concise"}
    assert df.attrs["varying"] == []
    assert df.attrs["constant"] == {"system": "concise"}


def test_config_label_default(tmp_path: Path) -> None:
    write_run(tmp_path / "0", ["system=concise"], job=0, system="concise")
    write_run(tmp_path / "1", ["system=concise", "sampling.seed=7"], job=1, system="concise")
    write_run(tmp_path / "2", [], job=2)
    df = load_results(tmp_path)
    assert df["config"].tolist()[::2] == [
        "system=concise",
        "system=concise sampling.seed=7",
        "default",
    ]
    assert df.attrs["varying"] == ["system", "sampling.seed"]
    assert df.attrs["constant"] == {}
    single = load_results(tmp_path / "2")
    assert set(single["config"]) == {"default"}


def test_config_label_of_jobs_alike_names_what_they_set(tmp_path: Path) -> None:
    write_run(tmp_path / "0", ["system=concise"], job=0, system="concise")
    write_run(tmp_path / "1", ["system=concise"], job=1, system="concise")
    df = load_results(tmp_path)
    assert set(df["config"]) == {"system=concise"}
    assert df.attrs["varying"] == []
