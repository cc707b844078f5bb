"""Typed schema of ``python data_prep/synthesize_instruct.py --input PATH... --output DIR``.

Imports only dataclasses, the filter stage's ``DecontamConfig`` and the eval harness's
``SandboxConfig`` (both standard library only), so a bad key fails before ``ast`` work, numpy,
datasketch or a sandbox start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from llmfoundry_lite.eval.config import SandboxConfig
from llmfoundry_lite.filtering.config import DecontamConfig
from llmfoundry_lite.validate import require_positive

SPLIT_BY = ("repository", "document")
# Root modules whose use makes a function unfit to run later in a test sandbox (files, processes, network).
UNSAFE_MODULES = (
    "os", "sys", "subprocess", "socket", "shutil", "requests", "urllib", "urllib3", "http", "httpx",
    "aiohttp", "ftplib", "smtplib", "telnetlib", "ctypes", "multiprocessing", "signal", "importlib",
    "tempfile", "pty", "webbrowser",
)
# Builtins that run code, import by name, stop the process or wait for a human.
UNSAFE_CALLS = ("eval", "exec", "compile", "__import__", "breakpoint", "input", "exit", "quit")


@dataclass
class SynthConfig:
    """Options of ``python data_prep/synthesize_instruct.py --input PATH [PATH ...] --output DIR``."""

    input: list[str] = field(default_factory=list)
    """Parquet/JSONL(.gz) files, directories of them (a filter run's ``kept/``), or source trees."""
    output: str = "data/instruct"
    """Receives ``instruct.jsonl``, ``train.jsonl``, ``heldout.jsonl``, ``stats.json`` and ``report/`` (overwritten)."""
    min_body_lines: int = 2
    """Fewest code lines (not blank, not comment-only) the body after the docstring may have (reason ``too_short``)."""
    max_body_lines: int = 60
    """Most code lines the body may have (reason ``too_long``)."""
    max_prompt_chars: int = 4000
    """Longest prompt in characters, header and imports included (reason ``prompt_too_long``)."""
    max_response_chars: int = 4000
    """Longest response in characters (reason ``response_too_long``)."""
    near_dup_threshold: float = 0.5
    """A pair whose MinHash-estimated Jaccard similarity with an earlier kept pair reaches this is dropped
    (reason ``near_duplicate``); shingles and permutations are the filter stage's (``filtering/dedup.py``)."""
    unsafe_modules: list[str] = field(default_factory=lambda: list(UNSAFE_MODULES))
    """Root modules that make a function ``unsafe_api`` when it imports them or uses a module-level import of them."""
    unsafe_calls: list[str] = field(default_factory=lambda: list(UNSAFE_CALLS))
    """Builtin names whose call makes a function ``unsafe_api`` (``open`` in a writing mode always does)."""
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    """Benchmark decontamination of each pair's code (reason ``decontaminated``); the filter stage's options."""
    keep_untested: bool = True
    """Keep pairs whose function has no test that could run (``origin: untested``); false drops them (reason
    ``untested``). On by default: doctests and literal asserts are rare in real code (a few percent of
    functions), so verified pairs alone are too few to fine-tune on, and every row says its ``origin``, so a
    consumer can still select ``origin == "verified"``."""
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    """Isolation and limits of each pair's test program (the eval harness's bubblewrap sandbox)."""
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Test programs run at once (default: the number of cores); results do not depend on it."""
    report: bool = True
    """Draw the X-ray PNGs into ``<output>/report/``."""
    heldout_fraction: float = 0.1
    """Target share of pairs in ``heldout.jsonl``; whole groups (see ``split_by``) move, so it is approximate."""
    split_by: str = "repository"
    """Group of the split: ``repository`` (a document without one is its own group) or ``document``."""
    seed: int = 0
    """Seed of the split's group order."""

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("input: give at least one file or directory (--input PATH ...)")
        if not self.output:
            raise ValueError("output must name a directory, e.g. output=data/instruct")
        require_positive(self, ("min_body_lines", "max_body_lines", "max_prompt_chars", "max_response_chars",
                                "workers"))
        if self.min_body_lines > self.max_body_lines:
            raise ValueError(f"min_body_lines ({self.min_body_lines}) must not exceed max_body_lines "
                             f"({self.max_body_lines})")
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ValueError(f"near_dup_threshold must lie in (0, 1], got {self.near_dup_threshold}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must lie in [0, 1), got {self.heldout_fraction}")
        if self.split_by not in SPLIT_BY:
            raise ValueError(f"unknown split_by {self.split_by!r}; choose from {list(SPLIT_BY)}")
