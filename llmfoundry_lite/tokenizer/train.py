"""Train the byte-level BPE code vocabulary and save a self-describing tokenizer directory.

Layout of the ids: the special block from ``special.py`` (0 = end-of-text, 1 = pad,
FIM, UL2 modes and sentinels, reserved), then the 256 byte symbols and the learned
merges. If the sample is too small for the trainer to reach the requested size,
``<|unused_i|>`` filler tokens complete it so the vocabulary is exactly the rounded
size the model's embedding expects; the manifest counts them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from llmfoundry_lite.tokenizer.config import RUNTIME_KEYS, TokenizerConfig, round_vocab
from llmfoundry_lite.tokenizer.io import MANIFEST_FILE, TOKENIZER_FILE, clean_text, tokenizer_sha256
from llmfoundry_lite.tokenizer.recipes import build_recipe
from llmfoundry_lite.tokenizer.sample import TextSample, draw_sample, input_signature
from llmfoundry_lite.tokenizer.special import EOS, NUM_SENTINELS, PAD, sentinel, special_tokens, unused

if TYPE_CHECKING:
    from tokenizers import Tokenizer

FORMAT_VERSION = 1
FIRST_SENTINEL_ID = special_tokens(0).index(sentinel(0))


def config_fingerprint(cfg: TokenizerConfig) -> str:
    """Hash of everything that changes the trained vocabulary: config (``RUNTIME_KEYS`` excluded: where
    the output goes and how the sample is read), the names and sizes of the input files, and the untrained
    pipeline itself."""
    d = dataclasses.asdict(cfg)
    for key in RUNTIME_KEYS:
        d.pop(key)
    d["format_version"] = FORMAT_VERSION
    d["input_signature"] = input_signature(cfg.input)
    d["pipeline"] = build_recipe(cfg.recipe).to_str()  # a changed pre-tokenizer must retrain
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def train_bpe(texts: list[str], vocab_size: int, num_reserved: int, recipe: str, min_frequency: int) -> Tokenizer:
    """A trained tokenizer of exactly ``vocab_size`` ids with the project's special layout."""
    from tokenizers import pre_tokenizers, trainers

    specials = special_tokens(num_reserved)
    tok = build_recipe(recipe)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((clean_text(t) for t in texts), trainer=trainer, length=len(texts))
    missing = vocab_size - tok.get_vocab_size()
    if missing > 0:
        tok.add_special_tokens([unused(i) for i in range(missing)])
    for i, s in enumerate(specials):
        if tok.token_to_id(s) != i:
            raise RuntimeError(f"special token {s!r} landed at id {tok.token_to_id(s)}, expected {i}")
    if tok.get_vocab_size() != vocab_size:
        raise RuntimeError(f"trained vocabulary has {tok.get_vocab_size()} ids, expected {vocab_size}")
    return tok


def _transformers_files(out: Path, num_reserved: int) -> None:
    """tokenizer_config.json + special_tokens_map.json for ``PreTrainedTokenizerFast.from_pretrained``."""
    extra = special_tokens(num_reserved)[2:]
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS,
        "pad_token": PAD,
        "bos_token": None,
        "unk_token": None,
        "additional_special_tokens": extra,
        "split_special_tokens": False,  # prompts written as strings reach the sentinels (see tokenizer/io.py)
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
        "model_max_length": 1_000_000_000,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    smap = {"eos_token": EOS, "pad_token": PAD, "additional_special_tokens": extra}
    (out / "special_tokens_map.json").write_text(json.dumps(smap, indent=2) + "\n")


def build_manifest(cfg: TokenizerConfig, tok: Tokenizer, sample: TextSample, seconds: float, out: Path) -> dict:
    """The self-description written next to tokenizer.json."""
    specials = special_tokens(cfg.num_reserved)
    return {
        "format_version": FORMAT_VERSION,
        "config_fingerprint": config_fingerprint(cfg),
        "config": dataclasses.asdict(cfg),
        "recipe": cfg.recipe,
        "vocab_size": tok.get_vocab_size(),
        "requested_vocab_size": cfg.vocab_size,
        "num_special": len(specials),
        "num_reserved": cfg.num_reserved,
        "num_unused_fillers": sum(1 for t in tok.get_added_tokens_decoder().values() if t.content.startswith("<|unused_")),
        "eos_id": tok.token_to_id(EOS),
        "pad_id": tok.token_to_id(PAD),
        "special_ids": {s: i for i, s in enumerate(specials[: FIRST_SENTINEL_ID])},
        "sentinel_id_range": [FIRST_SENTINEL_ID, FIRST_SENTINEL_ID + NUM_SENTINELS - 1],
        "reserved_id_range": [FIRST_SENTINEL_ID + NUM_SENTINELS, len(specials) - 1],
        "sample": {
            "docs": len(sample.texts),
            "docs_seen": sample.docs_seen,
            "bytes": sample.bytes,
            "sha256": sample.sha256,
            "seed": cfg.sample_seed,
            "special_strings_removed": sample.special_strings_removed,
            "reader_skips": sample.reader_skips,
        },
        "training_seconds": round(seconds, 2),
        "tokenizer_sha256": tokenizer_sha256(out),
    }


def train_tokenizer(cfg: TokenizerConfig, log: bool = True) -> dict:
    """Train (or reuse) the tokenizer described by ``cfg``; return its manifest."""
    out = Path(cfg.output)
    manifest_path = out / MANIFEST_FILE
    if manifest_path.is_file() and (out / TOKENIZER_FILE).is_file() and not cfg.overwrite:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("config_fingerprint") == config_fingerprint(cfg):
            return {**manifest, "reused": True}
    if out.exists() and any(out.iterdir()) and not manifest_path.is_file():
        raise ValueError(f"output {out} exists and is not a tokenizer directory; choose another output=")
    vocab_size = round_vocab(cfg.vocab_size)
    start = time.perf_counter()
    sample = draw_sample(cfg.input, cfg.sample_bytes, cfg.sample_seed, cfg.max_doc_bytes, cfg.num_reserved,
                         unit_bytes=cfg.unit_bytes, engine=cfg.engine, workers=cfg.workers,
                         spark_master=cfg.spark_master, spark_python=cfg.spark_python)
    if not sample.texts:
        raise ValueError(f"no documents found in input {cfg.input}")
    if log:
        engine = cfg.engine + (f", {cfg.workers} workers" if cfg.engine == "local" else "")
        print(f"sampled {len(sample.texts)} of {sample.docs_seen} docs in {time.perf_counter() - start:.1f} s ({engine})")
        print(f"training {cfg.recipe} BPE, vocab {vocab_size}, on {len(sample.texts)} docs / {sample.bytes:,} bytes")
    start = time.perf_counter()
    tok = train_bpe(sample.texts, vocab_size, cfg.num_reserved, cfg.recipe, cfg.min_frequency)
    seconds = time.perf_counter() - start
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok.save(str(tmp / TOKENIZER_FILE))
    _transformers_files(tmp, cfg.num_reserved)
    manifest = build_manifest(cfg, tok, sample, seconds, tmp)
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return {**manifest, "reused": False}
