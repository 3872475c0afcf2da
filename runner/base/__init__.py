"""The vocabulary every layer shares: the exception family, the config schema, and the records
the runner writes (transcripts, judgments, each job's ``job.json``). Imports nothing else of
the runner."""
