"""The commands: one module per command, each with ``main(argv)``.

The user-facing paths (``train.py``, ``data_prep/*.py``, ``eval/humaneval.py``, ``scripts/*.py``) are
wrappers of a few lines over these, and ``python -m llmfoundry_lite <command>`` (``__main__.py``)
reaches the same ``main`` from an installed wheel. Nothing in the library imports this package.
"""
