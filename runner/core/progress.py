"""The live progress line of a run or sweep: calls done of total, errors, tokens, cost so far,
and the console log handler that writes above it."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from runner.analysis.totals import Totals


class Progress:
    """One bar for everything running in an event loop; silent when stderr is not a terminal."""

    def __init__(self, enabled: bool = True) -> None:
        # of every record written so far: counts and sums only
        self.totals = Totals(keep_answers=False, keep_latencies=False)
        # Some terminals (ptys, CI consoles) report a size of 0x0, and tqdm then draws nothing;
        # shutil falls back to 80x24 there.
        size = shutil.get_terminal_size()
        self._bar = tqdm(
            total=0,
            unit="call",
            ncols=size.columns,
            nrows=size.lines,
            file=sys.stderr,
            disable=not (enabled and sys.stderr.isatty()),
        )

    def add_calls(self, n: int) -> None:
        """A job was planned: its calls join the total."""
        self._bar.total = (self._bar.total or 0) + n
        self._bar.refresh()

    def call_done(self, records: Sequence[dict[str, Any]]) -> None:
        """A call's records were written (one per choice). The bar counts turns: a call of a
        tool loop that asks for tools adds its tokens and cost, and the turn counts when its
        last call is written."""
        totals = self.totals
        turns = totals.turns
        totals.add(records)
        self._bar.set_postfix_str(
            f"errors={totals.errors} tokens={totals.total_tokens or 0:,} "
            f"cost=${totals.cost_usd or 0.0:.4f}",
            refresh=False,
        )
        if totals.turns > turns:
            self._bar.update(totals.turns - turns)
        else:
            self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Hydra's console log handler (``hydra.job_logging`` in ``runner.yaml``), writing through
    ``tqdm.write``: a progress bar on the same terminal is cleared first and drawn again
    below the line, instead of the line running into it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
