"""Typed schema of ``python data_prep/synthesize_instruct.py --input PATH... --output DIR``.

Imports only dataclasses, the filter stage's ``DecontamConfig`` and the eval harness's
``SandboxConfig`` (both standard library only), so a bad key fails before ``ast`` work, numpy,
datasketch or a sandbox start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from llmfoundry_lite.eval.config import DEVICES
from llmfoundry_lite.filtering.config import DecontamConfig
from llmfoundry_lite.sandbox import SandboxConfig
from llmfoundry_lite.validate import require_positive

SPLIT_BY = ("repository", "document")
ENGINES = ("local", "spark")
SUPPORTED_LANGUAGES = ("Python", "JavaScript", "TypeScript", "Java")
"""Languages with an extractor (``pipeline.DOCUMENT_PAIRS``): Python via ``ast``, the others via tree-sitter."""
# Root modules whose use makes a function unfit to run later in a test sandbox (files, processes, network).
UNSAFE_MODULES = (
    "os", "sys", "subprocess", "socket", "shutil", "requests", "urllib", "urllib3", "http", "httpx",
    "aiohttp", "ftplib", "smtplib", "telnetlib", "ctypes", "multiprocessing", "signal", "importlib",
    "tempfile", "pty", "webbrowser",
)
# Builtins that run code, import by name, stop the process or wait for a human.
UNSAFE_CALLS = ("eval", "exec", "compile", "__import__", "breakpoint", "input", "exit", "quit")


SELF_ALIGN_TARGETS = ("untested", "all")


@dataclass
class SelfAlignConfig:
    """Self-align mode (``model=PATH``): which instructions get sampled, and how (``self_align.py``)."""

    targets: str = "untested"
    """``untested``: pairs whose own body did not pass tests (kept ``untested`` ones and those dropped as
    ``failed_tests`` / ``tests_timed_out`` / ``untested``); ``all``: every pair, verified ones too."""
    k: int = 4
    """Samples drawn per targeted instruction whose tests can run."""
    temperature: float = 0.8
    """Sampling temperature; 0 is greedy (then all k samples are the same)."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    max_new_tokens: int = 256
    """Longest sampled body in tokens (one cut short does not compile and is counted as such)."""
    batch_size: int = 8
    """Samples of one instruction generated together; the samples depend on it, not on ``workers``."""
    seed: int = 0
    """Base seed; each instruction's generator is seeded from it and the pair's ``source_id``."""
    device: str = "cpu"
    """``cpu`` or ``cuda``."""

    def __post_init__(self) -> None:
        if self.targets not in SELF_ALIGN_TARGETS:
            raise ValueError(f"unknown self_align.targets {self.targets!r}; choose from {list(SELF_ALIGN_TARGETS)}")
        require_positive(self, ("k", "max_new_tokens", "batch_size"), "self_align.")
        if self.temperature < 0:
            raise ValueError(f"self_align.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"self_align.top_p must be in (0, 1], got {self.top_p}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown self_align.device {self.device!r}; choose from {', '.join(DEVICES)}")


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
    """A pair whose MinHash-estimated Jaccard similarity with a kept pair that opened one of its LSH buckets
    reaches this is dropped (reason ``near_duplicate``; the rule: ``synth/corpus_checks.py``); shingles and
    permutations are the filter stage's (``filtering/dedup.py``)."""
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
    """Extraction processes and test programs run at once (default: the number of cores); results do not
    depend on it."""
    unit_bytes: int = 64 << 20
    """Extraction's unit of work (``synth/collect.py``): runs of whole Parquet row groups of at least this
    many uncompressed bytes, or byte ranges of a JSONL file cut at line starts (a ``.jsonl.gz`` file or a source
    tree is one unit: ``corpus/units.py``). Finished units are reused by a rerun."""
    report: bool = True
    """Draw the X-ray PNGs into ``<output>/report/``."""
    heldout_fraction: float = 0.1
    """Target share of pairs in ``heldout.jsonl``; whole groups (see ``split_by``) move, so it is approximate."""
    split_by: str = "repository"
    """Group of the split: ``repository`` (a document without one is its own group) or ``document``."""
    seed: int = 0
    """Seed of the split's group order."""
    model: str | None = None
    """Self-align mode: a Composer checkpoint (``.pt`` or sharded directory), a training save folder or an HF
    export that samples bodies for the ``self_align.targets`` instructions; bodies that pass the pair's mined
    tests are added as ``origin: self-aligned`` rows. None (default): no sampling, output as without it."""
    self_align: SelfAlignConfig = field(default_factory=SelfAlignConfig)
    """Sampling options of self-align mode (used only with ``model``)."""
    engine: str = "local"
    """``local``: a process pool on this machine, every kept pair in this process's memory (~2 KB each).
    ``spark``: the active Spark session (or ``spark-submit``'s) runs extraction, decontamination, near-dedup,
    verification and writing as Spark jobs (``synth/spark_synthesis.py``), and the driver holds per-unit counts
    only; ``output`` must then be on a filesystem every executor sees, executors need bubblewrap, and with
    ``model`` each executor loads the model.
    Output is identical to ``local``'s."""
    spark_master: str = ""
    """Spark master URL to build a session with (``engine=spark``); empty uses the active session or
    ``spark-submit``'s."""
    spark_python: str = ""
    """Python of Spark's workers (``PYSPARK_PYTHON``); empty leaves Spark's choice."""
    languages: list[str] = field(default_factory=lambda: list(SUPPORTED_LANGUAGES))
    """Languages whose documents are read (The Stack's names); documents of another supported language
    are skipped as ``language_not_selected``, of an unsupported one as ``unsupported_language``."""

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("input: give at least one file or directory (--input PATH ...)")
        unknown = [name for name in self.languages if name not in SUPPORTED_LANGUAGES]
        if unknown or not self.languages:
            raise ValueError(f"languages={self.languages}: choose from {list(SUPPORTED_LANGUAGES)}")
        if not self.output:
            raise ValueError("output must name a directory, e.g. output=data/instruct")
        require_positive(self, ("min_body_lines", "max_body_lines", "max_prompt_chars", "max_response_chars",
                                "workers", "unit_bytes"))
        if self.min_body_lines > self.max_body_lines:
            raise ValueError(f"min_body_lines ({self.min_body_lines}) must not exceed max_body_lines "
                             f"({self.max_body_lines})")
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ValueError(f"near_dup_threshold must lie in (0, 1], got {self.near_dup_threshold}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must lie in [0, 1), got {self.heldout_fraction}")
        if self.split_by not in SPLIT_BY:
            raise ValueError(f"unknown split_by {self.split_by!r}; choose from {list(SPLIT_BY)}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose from {list(ENGINES)}")
        if self.model is not None and not os.path.exists(self.model):
            raise ValueError(f"model: no checkpoint, save folder or HF export at {self.model!r}")
