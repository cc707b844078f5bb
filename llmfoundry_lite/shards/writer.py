"""Write one unit of work: read its documents, tokenize, split, pack, write MDS.

A unit writes ``<split>/.<unit>.<attempt>.tmp/`` for each split with its own ``MDSWriter`` (a
directory no other attempt of the unit writes: ``spark_session.attempt_tmp``), renames them to
``<split>/<unit>/`` when complete — unless another attempt's complete directory is already there, which
is then kept (``publish_dir``) — and only then records ``.units/<unit>.json``. A unit without that record is redone from scratch on the
next run, so a killed run resumes at unit granularity (one MDSWriter run cannot be
resumed, so it is never asked to). Tokens are stored as ``uint16`` when every id fits
(vocabularies up to 65,536: half the bytes of ``int32``), else ``int32``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from llmfoundry_lite.corpus.identity import InputChangedError, file_identity, identity_key
from llmfoundry_lite.corpus.units import Unit, iter_unit, unit_rows
from llmfoundry_lite.shards.config import ShardsConfig
from llmfoundry_lite.shards.pack import SPLITS, Packer, split_key, split_of
from llmfoundry_lite.spark_session import attempt_tmp, publish_dir
from llmfoundry_lite.tokenizer.io import encode_texts, load_manifest, load_tokenizer

ENCODE_BATCH_DOCS = 64
UNITS_DIR = ".units"


def token_dtype(vocab_size: int) -> str:
    """The narrowest MDS ndarray type that holds every id of the vocabulary."""
    return "uint16" if vocab_size <= 1 << 16 else "int32"


def columns(vocab_size: int, max_seq_len: int) -> dict[str, str]:
    """The MDS columns of the shards: ``tokens`` as ``ndarray:<token_dtype>:<max_seq_len>``.

    A static dtype and shape leave MDS nothing to store per sample but the ids themselves."""
    return {"tokens": f"ndarray:{token_dtype(vocab_size)}:{max_seq_len}"}


def unit_record_path(out: Path, unit: Unit) -> Path:
    return out / UNITS_DIR / f"{unit.name}.json"


class _SplitWriter:
    """Packs one split of one unit; opens its MDSWriter only when the first sample exists."""

    def __init__(self, cfg: ShardsConfig, folder: Path, eos_id: int, vocab_size: int) -> None:
        self.cfg, self.folder = cfg, folder
        self.vocab_size = vocab_size
        self.packer = Packer(cfg.max_seq_len, eos_id)
        self.writer = None
        self.samples = 0

    def write(self, samples: list[np.ndarray]) -> None:
        if samples and self.writer is None:
            from streaming import MDSWriter

            self.writer = MDSWriter(
                out=str(self.folder),
                columns=columns(self.vocab_size, self.cfg.max_seq_len),
                compression=self.cfg.compression or None,
                hashes=list(self.cfg.hashes),
                size_limit=self.cfg.size_limit,
            )
        dtype = np.dtype(token_dtype(self.vocab_size))
        for s in samples:
            self.writer.write({"tokens": s.astype(dtype)})
        self.samples += len(samples)

    def close(self, pad_id: int) -> dict:
        dropped = self.packer.pending if self.cfg.remainder == "drop" else 0
        last, pads = self.packer.finish(self.cfg.remainder, pad_id)
        if last is not None:
            self.write([last])
        if self.writer is not None:
            self.writer.finish()
        return {"docs": self.packer.docs, "tokens": self.packer.tokens, "samples": self.samples,
                "pad_tokens": pads, "dropped_tokens": dropped}


def _check_no_specials(ids: list[list[int]], num_special: int, unit: Unit) -> None:
    """Ordinary text must never encode to a special id; if it does the tokenizer is misconfigured."""
    for doc in ids:
        if doc and min(doc) < num_special:
            raise RuntimeError(f"{unit.name}: text encoded to special id {min(doc)}; load tokenizers with load_tokenizer()")


def _check_accounting(unit: Unit, record: dict) -> None:
    """Every row of a Parquet range is written to a split or counted as skipped (JSONL and
    source directories have no row count to check against; their readers count skips)."""
    rows = unit_rows(unit)
    if rows is None:
        return
    written = record["train"]["docs"] + record["val"]["docs"]
    skipped = sum(record["skips"].values())
    if written + skipped != rows:
        raise RuntimeError(f"{unit.name}: document accounting broken: {written} written + {skipped} skipped != {rows} rows")


def write_unit(unit: Unit, cfg: ShardsConfig) -> dict:
    """Tokenize, pack and write one unit; return (and record) its counts."""
    out = Path(cfg.output)
    tok = load_tokenizer(cfg.tokenizer)
    tmanifest = load_manifest(cfg.tokenizer)
    eos_id, pad_id, num_special = tmanifest["eos_id"], tmanifest["pad_id"], tmanifest["num_special"]
    writers = {s: _SplitWriter(cfg, attempt_tmp(out / s / unit.name), eos_id, tmanifest["vocab_size"]) for s in SPLITS}
    skips: Counter = Counter()
    batch: list[dict] = []

    def flush() -> None:
        ids = encode_texts(tok, [d["content"] for d in batch])
        _check_no_specials(ids, num_special, unit)
        for doc, doc_ids in zip(batch, ids, strict=True):
            w = writers[split_of(split_key(doc, cfg.split_by), cfg.split_seed, cfg.val_fraction)]
            w.write(w.packer.add(doc_ids))
        batch.clear()

    wanted, unwanted = frozenset(cfg.languages), frozenset(cfg.exclude_languages)
    for doc in iter_unit(unit, skips):
        if (wanted and doc["lang"] not in wanted) or doc["lang"] in unwanted:
            skips["language_not_selected"] += 1
            continue
        if not doc["content"]:
            skips["empty_content"] += 1
            continue
        batch.append(doc)
        if len(batch) >= ENCODE_BATCH_DOCS:
            flush()
    if batch:
        flush()
    if identity_key(file_identity(unit.shard)) != unit.input_key:
        raise InputChangedError(f"{unit.shard.path} changed while {unit.name} was written; rerun when the input "
                                f"is complete — only the units made from it are redone")
    record = {"unit": unit.name, "input": unit.shard.path, "input_key": unit.input_key,
              "rows": [unit.start, unit.stop], "skips": dict(skips)}
    for split, w in writers.items():
        record[split] = w.close(pad_id)
    _check_accounting(unit, record)
    for split, w in writers.items():
        if w.writer is not None:  # a complete directory already there is this unit's (its name is its input's)
            publish_dir(w.folder, out / split / unit.name)
    path = unit_record_path(out, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = attempt_tmp(path)
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return record
