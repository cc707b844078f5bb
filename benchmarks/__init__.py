"""Measurement, kept out of the library: ``bench_*.py`` time a stage against a peer measured in the same
run (``bench_all.py`` runs them all for ``make bench``); ``quality/`` scores filters on labelled sets.

This folder is a package so that tests and the scripts themselves import one module under one name
(``benchmarks.quality.pii_evaluate``), but it is not shipped: the wheel holds ``llmfoundry_lite*`` only.
Every script runs from the repository root as a file (``python benchmarks/bench_filter.py``,
``python benchmarks/quality/eval_pii.py``). Run as a file, Python puts the script's own folder on
``sys.path``, not the repository root; a script that imports a sibling module therefore starts with the
one line ``sys.path.insert(0, str(Path(__file__).resolve().parents[N]))`` (N reaches the root), and the
tests, whose root is already on ``sys.path``, import the same ``benchmarks.*`` names.
"""
