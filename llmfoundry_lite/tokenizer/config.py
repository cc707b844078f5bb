"""Typed options of ``python data_prep/train_tokenizer.py`` (stdlib only, cheap to import)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmfoundry_lite.validate import require_positive

VOCAB_MULTIPLE = 64
RECIPE_NAMES = ("code", "starcoder")
ENGINES = ("local", "spark")
DEFAULT_UNIT_BYTES = 64 << 20
# Keys that decide where the output goes or how the sample is read, never the vocabulary (not fingerprinted).
RUNTIME_KEYS = ("output", "overwrite", "engine", "workers", "spark_master", "spark_python", "unit_bytes")


def round_vocab(size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """``size`` rounded up to a multiple of ``multiple`` (efficient embedding matmuls)."""
    return -(-size // multiple) * multiple


@dataclass
class TokenizerConfig:
    """How to train the byte-level BPE code vocabulary."""

    input: list[str] = field(default_factory=lambda: ["data/filtered/kept"])
    """Stack-format Parquet/JSONL files or directories to sample training text from."""
    output: str = "data/tokenizer"
    """Directory that receives tokenizer.json, tokenizer_config.json and manifest.json."""
    vocab_size: int = 32768
    """Total vocabulary incl. special and reserved tokens; rounded up to a multiple of 64."""
    num_reserved: int = 147
    """Reserved tokens after the UL2 sentinels; the default makes the special block exactly 256 ids."""
    recipe: str = "code"
    """Pre-tokenization recipe: ``code`` (this project's) or ``starcoder`` (the baseline)."""
    sample_bytes: int = 32_000_000
    """Budget of UTF-8 bytes in the training subsample."""
    sample_seed: int = 0
    """Seed of the hash that picks the subsample (documents with the smallest hashes win)."""
    max_doc_bytes: int = 200_000
    """Documents longer than this are cut to this many characters for training (a few huge files must not dominate)."""
    min_frequency: int = 2
    """A pair must occur at least this often to be merged."""
    overwrite: bool = False
    """Retrain even if ``output`` holds a tokenizer trained with the same config."""
    engine: str = "local"
    """Where the sample is read: ``local`` (this process, or a pool of ``workers``) or ``spark`` (one Spark task
    per unit, merged on the executors: the driver reads no document). The sample does not depend on it."""
    workers: int = 1
    """Processes reading units in parallel (``engine=local``); the sample is identical for any value."""
    unit_bytes: int = DEFAULT_UNIT_BYTES
    """Uncompressed input bytes per unit of sampling work (whole Parquet row groups, JSONL byte ranges; as the
    shard stage cuts them); the sample is identical for any value."""
    spark_master: str = ""
    """Spark master for ``engine=spark``; empty uses the active session or ``spark-submit``'s."""
    spark_python: str = ""
    """Interpreter for Spark's Python workers (``PYSPARK_PYTHON``); empty leaves Spark's setting alone."""

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("input must name at least one file or directory (input=[data/filtered/kept])")
        if self.recipe not in RECIPE_NAMES:
            raise ValueError(f"recipe: unknown recipe {self.recipe!r}; choose from {list(RECIPE_NAMES)}")
        if self.num_reserved < 0:
            raise ValueError(f"num_reserved must be >= 0, got {self.num_reserved}")
        require_positive(self, ("sample_bytes", "max_doc_bytes", "min_frequency", "workers", "unit_bytes"))
        if self.engine not in ENGINES:
            raise ValueError(f"engine: unknown choice {self.engine!r}; choose from {list(ENGINES)}")
        from llmfoundry_lite.tokenizer.special import special_tokens

        floor = len(special_tokens(self.num_reserved)) + 256
        if self.vocab_size < floor:
            raise ValueError(
                f"vocab_size={self.vocab_size} is below the {floor} ids taken by special tokens "
                f"and the 256-byte alphabet; raise vocab_size or lower num_reserved"
            )
