"""A Hydra callback for tests: records what Hydra tells it, to show callbacks still work."""

import json
import os
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class Probe(Callback):
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        time.sleep(float(os.environ.get("PROBE_START_DELAY_S", "0")))  # a slow job set-up
        out = Path(config.hydra.runtime.output_dir)
        (out / "probe_start.json").write_text(json.dumps({"at": time.time()}))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        out = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        transcript = out / "transcript.jsonl"
        lines = len(transcript.read_text().splitlines()) if transcript.exists() else -1
        (out / "probe.json").write_text(
            json.dumps(
                {
                    "hydra_output_dir": HydraConfig.get().runtime.output_dir,
                    "cwd": os.getcwd(),
                    "status": job_return.status.name,
                    "return_value": job_return._return_value,
                    "records_at_job_end": lines,
                }
            )
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        Path(config.hydra.sweep.dir, "probe_multirun_end").write_text("done")
