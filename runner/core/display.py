"""Showing an answer while it streams: live Markdown in Jupyter, plain text elsewhere."""

from __future__ import annotations

import math
import sys
import time
from typing import Protocol, TextIO

UPDATE_INTERVAL_S = 0.05  # the fastest a live Markdown display is redrawn


class View(Protocol):
    """Where a streamed answer is shown: pieces as they come, a restart on retry, and at the
    end the answer (None when the turn failed) with its footer line."""

    def piece(self, text: str) -> None: ...

    def restart(self) -> None: ...

    def finish(self, answer: str | None, footer: str) -> None: ...


class NoView:
    """Shows nothing (``ask(show=False)``)."""

    def piece(self, text: str) -> None:
        pass

    def restart(self) -> None:
        pass

    def finish(self, answer: str | None, footer: str) -> None:
        pass


class TextView:
    """Plain text on a stream (stdout): pieces as they arrive, then a footer line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.open_line = False

    def piece(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
        self.open_line = not text.endswith("\n")

    def restart(self) -> None:
        self.stream.write(("\n" if self.open_line else "") + "[retrying: the answer starts over]\n")
        self.stream.flush()
        self.open_line = False

    def finish(self, answer: str | None, footer: str) -> None:
        self.stream.write(("\n" if self.open_line else "") + footer + "\n")
        self.stream.flush()
        self.open_line = False


class MarkdownView:
    """Live Markdown in a Jupyter output area, redrawn at most every ``UPDATE_INTERVAL_S``."""

    def __init__(self) -> None:
        from IPython.display import Markdown, display

        self.markdown = Markdown
        self.handle = display(Markdown(""), display_id=True)
        self.text = ""
        self.shown_at = -math.inf

    def piece(self, text: str) -> None:
        self.text += text
        now = time.monotonic()
        if now - self.shown_at >= UPDATE_INTERVAL_S:
            self.handle.update(self.markdown(self.text))
            self.shown_at = now

    def restart(self) -> None:
        self.text = ""
        self.handle.update(self.markdown(""))
        self.shown_at = time.monotonic()

    def finish(self, answer: str | None, footer: str) -> None:
        footer = "_" + footer.replace("$", r"\$") + "_"
        body = answer if answer is not None else self.text
        self.handle.update(self.markdown(f"{body}\n\n{footer}" if body else footer))


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached)."""
    if "IPython" not in sys.modules:  # never import IPython just to find out
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and (
        hasattr(shell, "kernel") or "IPKernelApp" in getattr(shell, "config", {})
    )


def make_view() -> View:
    return MarkdownView() if in_jupyter() else TextView(sys.stdout)
