"""``shard_stack.py``: corpus → filter → vocabulary → MDS shards, each stage resumable.

Stage 0 builds the local Stack-format corpus when no ``input`` is given; stage 1 runs
the filter (``llmfoundry_lite.filtering.pipeline.run_filter``); stage 2 trains the
vocabulary on the filter's ``kept/`` documents, or takes an existing tokenizer from
``reuse_tokenizer``; stage 3 writes the train/val shards. Every stage reuses its
output when it was made from the same config and inputs, so rerunning after a crash
continues where it stopped. The ``input``/``tokenizer`` fields of the ``tokenizer`` and
``shards`` sections are wired by the pipeline from the previous stage's output.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from llmfoundry_lite.corpus.local_stack import LocalStackConfig
from llmfoundry_lite.filtering.config import FilterConfig
from llmfoundry_lite.shards.config import ShardsConfig
from llmfoundry_lite.tokenizer.config import TokenizerConfig


@dataclass
class StackConfig:
    """Options of ``python data_prep/shard_stack.py [cfg.yaml] [key=value ...]``."""

    input: list[str] = field(default_factory=list)
    """Raw Stack-format Parquet/JSONL files or source directories; empty builds the local corpus (``corpus``)."""
    filter_enabled: bool = True
    """Run the filter stage; false feeds the raw corpus straight to the vocabulary and shards."""
    reuse_tokenizer: str = ""
    """An existing tokenizer directory to shard with; empty trains one (``tokenizer`` section)."""
    corpus: LocalStackConfig = field(default_factory=LocalStackConfig)
    """Stage 0: the built-in local corpus, used when ``input`` is empty."""
    filter: FilterConfig = field(default_factory=FilterConfig)
    """Stage 1: filtering, PII redaction and deduplication (its ``input`` is wired by the pipeline)."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """Stage 2: vocabulary training (its ``input`` is wired to the filter's ``kept/``)."""
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    """Stage 3: MDS shards (its ``input`` and ``tokenizer`` are wired by the pipeline)."""

    def __post_init__(self) -> None:
        if self.reuse_tokenizer and not (Path(self.reuse_tokenizer) / "tokenizer.json").is_file():
            raise ValueError(f"reuse_tokenizer: {self.reuse_tokenizer}/tokenizer.json not found; "
                             f"leave reuse_tokenizer empty to train one")


def _stage(name: str, log: bool) -> float:
    if log:
        print(f"== {name}", flush=True)
    return time.perf_counter()


def _done(start: float, what: str, log: bool) -> None:
    if log:
        print(f"   {what} ({time.perf_counter() - start:.1f} s)", flush=True)


def corpus_stage(cfg: StackConfig, log: bool) -> list[str]:
    """Stage 0: the raw inputs (building the local corpus if none were given)."""
    if cfg.input:
        return list(cfg.input)
    from llmfoundry_lite.corpus.local_stack import build_local_stack, format_summary

    t = _stage("stage 0: local corpus", log)
    manifest = build_local_stack(cfg.corpus, progress=log)
    _done(t, f"{'reused' if manifest['reused'] else 'built'} {cfg.corpus.output}", log)
    if log:
        print(format_summary(manifest), flush=True)
    return [cfg.corpus.output]


def filter_stage(cfg: StackConfig, raw: list[str], log: bool) -> tuple[list[str], dict | None]:
    """Stage 1: the filtered corpus (``<filter.output>/kept``), or the raw input when disabled."""
    if not cfg.filter_enabled:
        return raw, None
    from llmfoundry_lite.filtering.pipeline import run_filter

    t = _stage("stage 1: filter", log)
    fcfg = dataclasses.replace(cfg.filter, input=list(raw))
    stats = run_filter(fcfg, progress=log)
    _done(t, f"kept {stats['kept']:,} of {stats['seen']:,} documents in {fcfg.output}/kept", log)
    return [f"{fcfg.output.rstrip('/')}/kept"], stats  # a string join: output may be a URI


def tokenizer_stage(cfg: StackConfig, docs: list[str], log: bool) -> tuple[str, dict]:
    """Stage 2: the tokenizer directory (trained on ``docs``, or the one to reuse)."""
    from llmfoundry_lite.tokenizer.io import load_manifest
    from llmfoundry_lite.tokenizer.train import train_tokenizer

    if cfg.reuse_tokenizer:
        return cfg.reuse_tokenizer, load_manifest(cfg.reuse_tokenizer)
    t = _stage("stage 2: vocabulary", log)
    tcfg = dataclasses.replace(cfg.tokenizer, input=list(docs))
    manifest = train_tokenizer(tcfg, log=log)
    _done(t, f"{'reused' if manifest['reused'] else 'trained'} {tcfg.output}: vocab {manifest['vocab_size']}", log)
    return tcfg.output, manifest


def shards_stage(cfg: StackConfig, docs: list[str], tokenizer_dir: str, log: bool) -> dict:
    """Stage 3: train/val MDS shards of ``docs`` encoded with ``tokenizer_dir``."""
    from llmfoundry_lite.shards.build import build_shards

    t = _stage("stage 3: shards", log)
    scfg = dataclasses.replace(cfg.shards, input=list(docs), tokenizer=tokenizer_dir, progress=log and cfg.shards.progress)
    manifest = build_shards(scfg)
    tr, va = manifest["splits"]["train"], manifest["splits"]["val"]
    _done(t, f"{'reused' if manifest['reused'] else 'wrote'} {scfg.output}: train {tr['samples']:,} samples "
             f"({tr['tokens']:,} tokens), val {va['samples']:,} samples ({va['tokens']:,} tokens)", log)
    return manifest


def run_stack(cfg: StackConfig, log: bool = True) -> dict:
    """Run every stage; return a summary with each stage's manifest or stats."""
    raw = corpus_stage(cfg, log)
    docs, filter_stats = filter_stage(cfg, raw, log)
    tokenizer_dir, tok_manifest = tokenizer_stage(cfg, docs, log)
    shards = shards_stage(cfg, docs, tokenizer_dir, log)
    return {"input": raw, "documents": docs, "filter": filter_stats, "tokenizer_dir": tokenizer_dir,
            "tokenizer": tok_manifest, "shards": shards}
