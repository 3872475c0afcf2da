"""Analysis: reads records only (no Hydra, no OmegaConf, no openai SDK). Totals, scores and
their intervals, the summary, ``load_results`` (pandas) and the report."""
