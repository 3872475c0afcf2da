"""runner: a Hydra-configured prompt experiment runner.

Describe an experiment in ``conf/``, run ``python -m runner`` (or sweep with ``-m``), and
every API call becomes one JSONL record; ``load_results`` turns a run or a sweep into one
pandas DataFrame.

The public API is listed in ``__init__.pyi`` and loaded as it is first used, so that
``import runner`` stays cheap and ``from runner import load_results`` loads neither Hydra nor
the openai SDK.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach_stub(__name__, __file__)
