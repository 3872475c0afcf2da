"""Hydra launcher that runs every job of a sweep concurrently in one event loop."""
