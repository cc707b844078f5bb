"""Instruction pairs mined from real code without an LLM (StarCoder2-Instruct's seed gathering).

A documented Python function becomes one pair: the prompt shows its signature and docstring,
the response is its body. Module map: ``config`` (typed options), ``extract`` (``ast`` →
functions, the prompt format), ``checks`` (per-function filters), ``mining`` (doctests and
literal asserts of the same file as tests), ``corpus_checks`` (benchmark decontamination and
near-duplicate removal across the corpus), ``verify`` (which pairs can run, their program) and
``verify_stage`` (running them in the eval sandbox, keep or drop), ``split`` (train/heldout by
repository), ``report`` (the X-ray PNGs), ``pipeline`` (``run_synthesis``: read, filter, verify,
split, write, count).
"""
