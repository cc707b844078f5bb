"""Typed options of the shard stage (``shards:`` in ``shard_stack.py``'s config); stdlib only."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from llmfoundry_lite.validate import require_positive

REMAINDERS = ("pad", "drop")
SPLIT_BY = ("repository", "content")
HASH_ALGOS = ("sha1", "sha256", "xxh64", "xxh3_64", "md5")
# Keys that change how the work is scheduled or where it goes, never the bytes written.
RUNTIME_KEYS = ("workers", "output", "staging", "overwrite", "progress", "engine", "spark_master", "spark_python")
ENGINES = ("local", "spark")


@dataclass
class ShardsConfig:
    """Tokenize documents and write packed MDS samples for ``train`` and ``val``."""

    input: list[str] = field(default_factory=lambda: ["data/filtered/kept"])
    """Stack-format Parquet/JSONL files or directories (normally the filter's ``kept/``)."""
    tokenizer: str = "data/tokenizer"
    """Tokenizer directory (tokenizer.json + manifest.json) used to encode the documents."""
    output: str = "data/shards"
    """Receives ``train/``, ``val/`` (MDS) and ``manifest.json``: a path, ``file://``, ``dbfs:/``, or an
    object-store URI built in ``staging`` and published when finished (what ``streaming``'s ``remote`` reads)."""
    staging: str = ""
    """For an object-store ``output`` only: the POSIX directory the shards are built in (required with
    ``engine=spark``; default ``~/.cache/llmfoundry_lite/staging/<hash>``)."""
    max_seq_len: int = 2048
    """Tokens per packed sample."""
    val_fraction: float = 0.01
    """Share of repositories (or documents, see ``split_by``) that go to ``val``, by a stable hash."""
    split_by: str = "repository"
    """``repository``: every file of one repository lands on the same side (files without a repository
    fall back to their content), so val loss is not flattered by near-copies from the same repo;
    ``content``: each document by the hash of its content."""
    split_seed: int = 0
    """Seed of the train/val hash; change it to draw a different validation set."""
    languages: list[str] = field(default_factory=list)
    """Only documents whose ``lang`` is listed (empty = every language); the others are counted as
    ``language_not_selected``. With ``exclude_languages`` this cuts a source into per-language shards
    that training can weight as separate streams."""
    exclude_languages: list[str] = field(default_factory=list)
    """Documents whose ``lang`` is listed are left out (counted as ``language_not_selected``)."""
    unit_bytes: int = 64 << 20
    """Uncompressed bytes of whole Parquet row groups per unit of work (a unit never splits a row group);
    fixed units make output independent of ``workers``."""
    workers: int = 1
    """Worker processes tokenizing units in parallel (``engine=local``); the shards are byte-identical for any value."""
    engine: str = "local"
    """``local`` (a process pool) or ``spark`` (one Spark task per unit; ``output`` on a shared filesystem).
    The bytes written do not depend on it."""
    spark_master: str = ""
    """Spark master for ``engine=spark``; empty uses the active session or ``spark-submit``'s."""
    spark_python: str = ""
    """Interpreter for Spark's Python workers (``PYSPARK_PYTHON``); empty leaves Spark's setting alone."""
    remainder: str = "pad"
    """Last partial sample of each unit and split: ``pad`` (with PAD id 1) or ``drop``."""
    compression: str = "zstd"
    """MDS shard compression (``zstd``, ``zstd:<level>``, or empty for none)."""
    hashes: list[str] = field(default_factory=lambda: ["sha1", "xxh64"])
    """Hashes MDS records for every shard (verified by StreamingDataset when asked)."""
    size_limit: int = 1 << 26
    """Bytes per MDS shard file before a new one starts (64 MiB)."""
    overwrite: bool = False
    """Rebuild even if ``output`` holds shards made with the same config and tokenizer."""
    progress: bool = True
    """Print one line per finished unit."""

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("shards.input must name at least one file or directory")
        if self.max_seq_len < 2:
            raise ValueError(f"max_seq_len must be >= 2, got {self.max_seq_len}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        require_positive(self, ("unit_bytes", "workers", "size_limit"))
        if self.engine not in ENGINES:
            raise ValueError(f"engine: unknown choice {self.engine!r}; choose from {list(ENGINES)}")
        if self.split_by not in SPLIT_BY:
            raise ValueError(f"split_by: unknown choice {self.split_by!r}; choose from {list(SPLIT_BY)}")
        if self.remainder not in REMAINDERS:
            raise ValueError(f"remainder: unknown choice {self.remainder!r}; choose from {list(REMAINDERS)}")
        if set(self.languages) & set(self.exclude_languages):
            raise ValueError(f"languages and exclude_languages overlap: {sorted(set(self.languages) & set(self.exclude_languages))}")
        unknown = sorted(set(self.hashes) - set(HASH_ALGOS))
        if unknown:
            raise ValueError(f"hashes: unknown algorithm(s) {unknown}; choose from {list(HASH_ALGOS)}")


def shards_fingerprint(cfg: ShardsConfig, tokenizer_sha256: str) -> str:
    """Hash of everything that decides the shard bytes: config minus runtime keys, plus the tokenizer."""
    d = dataclasses.asdict(cfg)
    for key in RUNTIME_KEYS:
        d.pop(key)
    d["tokenizer"] = tokenizer_sha256
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
