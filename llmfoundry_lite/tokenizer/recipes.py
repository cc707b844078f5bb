"""Tokenizer recipes: the pipeline (pre-tokenizer, model, decoder) before training.

``code`` is this project's recipe. It differs from GPT-2/StarCoder byte-level
pre-tokenization in three code-specific ways:

* a line break, together with the whitespace around it (trailing blanks, empty
  lines, the next line's indentation), is one pre-token, so BPE can learn
  ``"\\n        "``-style tokens that cover a newline *and* an indentation level;
* ``_`` belongs to words, so ``snake_case`` identifiers are not cut at every
  underscore before BPE sees them, and a word may carry one leading symbol
  (``.append``, ``(self``, ``@Override``, ``$var``, as GPT-4's splitter allows), so
  member access and call syntax become single tokens;
* every digit is its own pre-token (as StarCoder and Replit do), so numbers are
  spelled digit by digit and never memorised as opaque chunks.

Runs of blanks inside a line keep GPT-2's rule (all but the last blank form one
piece, the last one prefixes the next word), which aligns columns in tables and
keeps ``" ="``-style tokens. After the split, pieces are mapped to the 256-symbol
byte alphabet (``ByteLevel`` without its own regex), and the decoder maps them
back, so any string round-trips exactly.

``starcoder`` is the StarCoder recipe (``Digits(individual_digits=True)`` then
GPT-2 ``ByteLevel``), kept as the baseline for ``benchmarks/bench_tokenizer.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Oniguruma syntax (the engine behind tokenizers' Split). Alternatives are tried in order
# at each position; together they match every character, so no text falls between pieces.
CODE_SPLIT_PATTERN = "|".join(
    [
        r"[ \t]*(?:\r?\n|\r)(?:[ \t]*(?:\r?\n|\r))*[ \t]*",  # line break(s) + surrounding blanks + indentation
        r"\p{N}",  # one digit
        r"[^\s\p{L}\p{M}\p{N}_]?[\p{L}\p{M}_]+",  # identifier, with one leading symbol: .attr (self @Override $var
        r" [\p{L}\p{M}_]+",  # identifier with its leading space
        r" ?[^\s\p{L}\p{M}\p{N}_]+",  # operator / punctuation run, optionally with its leading space
        r"[ \t]+(?![^ \t])",  # blanks followed by blanks or end of text
        r"[ \t]+",  # blanks (the last blank before a word is left to the word)
        r"\s",  # any other whitespace (form feed, vertical tab, Unicode spaces)
    ]
)


def _code_recipe() -> Tokenizer:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CODE_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def _starcoder_recipe() -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


RECIPES: dict[str, Callable[[], Tokenizer]] = {"code": _code_recipe, "starcoder": _starcoder_recipe}


def build_recipe(name: str) -> Tokenizer:
    """An untrained tokenizer for recipe ``name``."""
    if name not in RECIPES:
        raise ValueError(f"unknown tokenizer recipe {name!r}; choose from {sorted(RECIPES)}")
    return RECIPES[name]()
