"""The transcripts of fixed sweeps stay the same, byte for byte apart from times and ids: on
the echo model and against the fake server (see ``tests/golden.py``)."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer
from golden import SCENARIOS, Scenario, golden_path, run


@pytest.mark.slow
@pytest.mark.needs_encodings
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_a_fixed_sweep_writes_the_golden_transcripts(
    scenario: Scenario, tmp_path: Path, fake_server: FakeOpenAIServer
) -> None:
    got = run(scenario, tmp_path, fake_server)
    want = golden_path(scenario.name).read_text(encoding="utf-8")
    if got != want:
        diff = difflib.unified_diff(
            want.splitlines(), got.splitlines(), "golden", "now", n=0, lineterm=""
        )
        pytest.fail(f"{scenario.name} differs from its golden transcripts:\n" + "\n".join(diff))
