"""Hydra search-path plugin that puts ``./conf`` ahead of the runner's packaged config tree."""
