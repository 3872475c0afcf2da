"""The core: experiments as plain objects, config in and records out (OmegaConf, never Hydra).
Validation, planning, running and resuming a job, its records and their cost, batches, the
judge, and the notebook chat's mechanics."""
