"""Write one unit of work: read its documents, tokenize, split, pack, write MDS.

One read of a unit serves every stream over the same input (the per-language shard sets of a source):
each document is tokenized once and packed into each stream that takes it; a stream that does not
counts it as ``language_not_selected``. Per stream, a unit writes ``<split>/.<unit>.<attempt>.tmp/`` for
each split with its own ``MDSWriter`` (a directory no other attempt of the unit writes:
``spark_session.attempt_tmp``), renames them to ``<split>/<unit>/`` when complete — unless another
attempt's complete directory is already there, which is then kept (``publish_dir``) — and only then
records ``.units/<unit>.json``. A unit without that record is redone from scratch on the next run, so a
killed run resumes at unit granularity (one MDSWriter run cannot be resumed, so it is never asked to).
Tokens are stored as ``uint16`` when every id fits (vocabularies up to 65,536: half the bytes of
``int32``), else ``int32``.
"""

from __future__ import annotations

import json
import os
import sys
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


def pin_tokenizer_threads() -> None:
    """Inside a Spark task, size the tokenizer's thread pool to the task's cores (``spark.task.cpus``).

    HF ``tokenizers`` encodes batches on rayon's global pool, sized by default to every logical CPU of the
    host: 8 tasks of an 8-core executor on a 96-core host would each start 96 threads. Rayon reads
    ``RAYON_NUM_THREADS`` once, when the pool is first used, and Python workers are reused across tasks, so
    this runs before the tokenizer is first touched. An explicit setting (``spark.executorEnv``) is kept.
    Outside Spark nothing changes (the local pool turns tokenizer parallelism off instead)."""
    if "pyspark" not in sys.modules:  # a Spark Python worker has it imported; never import it for a local run
        return
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is not None:
        os.environ.setdefault("RAYON_NUM_THREADS", str(context.cpus()))


class _Stream:
    """One stream (one ``ShardsConfig``) within one unit: which documents it takes, its split writers, skips."""

    def __init__(self, cfg: ShardsConfig, unit: Unit, tmanifest: dict) -> None:
        self.cfg, self.out = cfg, Path(cfg.output)
        self.wanted, self.unwanted = frozenset(cfg.languages), frozenset(cfg.exclude_languages)
        self.writers = {s: _SplitWriter(cfg, attempt_tmp(self.out / s / unit.name), tmanifest["eos_id"],
                                        tmanifest["vocab_size"]) for s in SPLITS}
        self.skips: Counter = Counter()

    def takes(self, doc: dict) -> bool:
        """Whether this stream writes ``doc``; if not, the reason is counted."""
        if (self.wanted and doc["lang"] not in self.wanted) or doc["lang"] in self.unwanted:
            self.skips["language_not_selected"] += 1
            return False
        if not doc["content"]:
            self.skips["empty_content"] += 1
            return False
        return True

    def add(self, doc: dict, ids: list[int]) -> None:
        w = self.writers[split_of(split_key(doc, self.cfg.split_by), self.cfg.split_seed, self.cfg.val_fraction)]
        w.write(w.packer.add(ids))

    def finish(self, unit: Unit, read_skips: Counter, pad_id: int) -> dict:
        """Close the writers, check the counts, put the directories in place, then record the unit."""
        skips = Counter(read_skips)
        skips.update(self.skips)
        record = {"unit": unit.name, "input": unit.shard.path, "input_key": unit.input_key,
                  "rows": [unit.start, unit.stop], "skips": dict(skips)}
        for split, w in self.writers.items():
            record[split] = w.close(pad_id)
        _check_accounting(unit, record)
        for split, w in self.writers.items():
            if w.writer is not None:  # a complete directory already there is this unit's (its name is its input's)
                publish_dir(w.folder, self.out / split / unit.name)
        path = unit_record_path(self.out, unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = attempt_tmp(path)
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp, path)
        return record


def write_unit(unit: Unit, cfgs: list[ShardsConfig]) -> list[dict]:
    """Read one unit once and write it for every stream in ``cfgs`` (all with the unit's input and one
    tokenizer): each document is tokenized once and packed into the streams that take it. Returns (and
    records, per stream) each stream's counts, in the order of ``cfgs``."""
    pin_tokenizer_threads()
    tok = load_tokenizer(cfgs[0].tokenizer)
    tmanifest = load_manifest(cfgs[0].tokenizer)
    streams = [_Stream(cfg, unit, tmanifest) for cfg in cfgs]
    read_skips: Counter = Counter()  # what the reader dropped: every stream counts it
    batch: list[tuple[dict, list[_Stream]]] = []

    def flush() -> None:
        ids = encode_texts(tok, [doc["content"] for doc, _ in batch])
        _check_no_specials(ids, tmanifest["num_special"], unit)
        for (doc, takers), doc_ids in zip(batch, ids, strict=True):
            for stream in takers:
                stream.add(doc, doc_ids)
        batch.clear()

    for doc in iter_unit(unit, read_skips):
        takers = [s for s in streams if s.takes(doc)]  # every stream asked: each counts its own skips
        if takers:
            batch.append((doc, takers))
            if len(batch) >= ENCODE_BATCH_DOCS:
                flush()
    if batch:
        flush()
    if identity_key(file_identity(unit.shard)) != unit.input_key:
        raise InputChangedError(f"{unit.shard.path} changed while {unit.name} was written; rerun when the input "
                                f"is complete — only the units made from it are redone")
    return [stream.finish(unit, read_skips, tmanifest["pad_id"]) for stream in streams]
