"""Typed options of ``python data_prep/train_tokenizer.py`` (stdlib only, cheap to import)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmfoundry_lite.validate import require_positive

VOCAB_MULTIPLE = 64
RECIPE_NAMES = ("code", "starcoder")


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

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("input must name at least one file or directory (input=[data/filtered/kept])")
        if self.recipe not in RECIPE_NAMES:
            raise ValueError(f"recipe: unknown recipe {self.recipe!r}; choose from {list(RECIPE_NAMES)}")
        if self.num_reserved < 0:
            raise ValueError(f"num_reserved must be >= 0, got {self.num_reserved}")
        require_positive(self, ("sample_bytes", "max_doc_bytes", "min_frequency"))
        from llmfoundry_lite.tokenizer.special import special_tokens

        floor = len(special_tokens(self.num_reserved)) + 256
        if self.vocab_size < floor:
            raise ValueError(
                f"vocab_size={self.vocab_size} is below the {floor} ids taken by special tokens "
                f"and the 256-byte alphabet; raise vocab_size or lower num_reserved"
            )
