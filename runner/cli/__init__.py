"""The command line and the notebook's entry points: the only Hydra importers (with
``hydra_plugins/``). Composing, the Hydra task and callbacks, ``init``, the ``judge``
command, one-line diagnostics, and ``ChatSession`` composed from presets."""
