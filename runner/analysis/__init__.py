"""Analysis: reads records only (no Hydra, no OmegaConf, no openai SDK)."""
