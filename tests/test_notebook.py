"""The example notebook runs top to bottom in a real Jupyter kernel on this interpreter."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "example.ipynb"
CELL_TIMEOUT_S = 90


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A kernel client for an ipykernel running ``sys.executable`` in ``notebooks/``."""
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    # A kernelspec of our own, so a user's or the system's "python3" cannot pick another Python.
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    specs = KernelSpecManager(kernel_dirs=[str(spec.parent)])
    assert specs.get_kernel_spec("python3").argv[0] == sys.executable

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "HYDRA_", "PYTEST_", "MPLBACKEND"))
    }
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")  # the notebook's OUT folder lands here
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    manager.start_kernel(cwd=str(NOTEBOOK.parent), env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def execute(client: Any, code: str) -> list[dict[str, Any]]:
    """Run ``code``; return the iopub messages it caused, up to the kernel going idle."""
    msg_id = client.execute(code)
    messages: list[dict[str, Any]] = []
    while True:
        msg = client.get_iopub_msg(timeout=CELL_TIMEOUT_S)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        messages.append(msg)
    while True:
        reply = client.get_shell_msg(timeout=CELL_TIMEOUT_S)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert not errors, "\n".join("\n".join(e["traceback"]) for e in errors)
    assert reply["content"]["status"] == "ok", reply["content"]
    return messages


def of_type(messages: list[dict[str, Any]], *types: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["msg_type"] in types]


def stdout(messages: list[dict[str, Any]]) -> str:
    return "".join(
        m["content"]["text"]
        for m in of_type(messages, "stream")
        if m["content"]["name"] == "stdout"
    )


def result(messages: list[dict[str, Any]], mime: str) -> str:
    (out,) = of_type(messages, "execute_result")
    return out["content"]["data"][mime]


def streamed_markdown(messages: list[dict[str, Any]]) -> list[str]:
    """The Markdown of one live display: what was shown first, then each update."""
    (shown,) = of_type(messages, "display_data")
    display_id = shown["content"]["transient"]["display_id"]
    updates = [
        m["content"]["data"]["text/markdown"]
        for m in of_type(messages, "update_display_data")
        if m["content"]["transient"]["display_id"] == display_id
    ]
    return [shown["content"]["data"]["text/markdown"], *updates]


def test_example_notebook_runs_in_a_kernel(kernel: Any) -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    assert stdout(execute(kernel, "import sys; print(sys.executable)")).strip() == sys.executable

    ran: dict[str, list[dict[str, Any]]] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [] and cell.execution_count is None, f"{cell.id} has outputs"
        ran[cell.id] = execute(kernel, cell.source)

    assert str(REPO) not in stdout(ran["setup"])  # writes go to a temp folder, not the repo

    head = result(ran["load"], "text/html")
    for column in ("system", "sampling.temperature", "conversation_id", "usage.prompt_tokens"):
        assert column in head
    assert "32 records" in stdout(ran["load"])  # 4 jobs x 8 turns of math_chat

    by_system = result(ran["pivot"], "text/plain")
    assert "helpful" in by_system and "concise" in by_system and "times_then_add" in by_system
    by_temperature = result(ran["pivot-temperature"], "text/plain")
    assert "0.0" in by_temperature and "0.7" in by_temperature

    images = [
        m for m in of_type(ran["plot"], "display_data") if "image/png" in m["content"]["data"]
    ]
    assert len(images) == 1
    assert "no scores" not in stdout(ran["plot"])  # math_chat is scored: the score plot is drawn

    assert "divide_square_subtract" in result(ran["run"], "text/plain")

    for cell_id, answer in [("chat", "What is 12 times 7?"), ("chat-follow-up", "Now add 16")]:
        markdown = streamed_markdown(ran[cell_id])
        assert markdown[0] == "" and len(markdown) >= 3  # shown, then at least 2 updates
        assert answer in markdown[-1] and "_prompt " in markdown[-1]
        assert not of_type(ran[cell_id], "execute_result")

    assert result(ran["chat-turn"], "text/plain").startswith(
        "<ChatTurn 'Now add 16 to that.' -> 'Now add 16 to that.' · "
    )
    assert "7 messages in the conversation" in stdout(ran["chat-save"])
