"""Instruction pairs mined from real code without an LLM (StarCoder2-Instruct's seed gathering).

A documented Python function becomes one pair: the prompt shows its signature and docstring,
the response is its body. Module map: ``config`` (typed options), ``extract`` (``ast`` →
functions, the prompt format), ``checks`` (per-function filters), ``corpus_checks`` (benchmark
decontamination and near-duplicate removal across the corpus), ``split`` (train/heldout by
repository), ``pipeline`` (``run_synthesis``: read, filter, split, write, count).
"""
