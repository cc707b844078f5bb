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
from llmfoundry_lite.filtering.config import FilterConfig, SourceConfig
from llmfoundry_lite.shards.config import ShardsConfig
from llmfoundry_lite.tokenizer.config import TokenizerConfig


@dataclass
class StackSource(SourceConfig):
    """A source of ``shard_stack.py``: its inputs, filter overrides, and languages sharded apart."""

    split_languages: list[str] = field(default_factory=list)
    """Languages that get shards of their own, ``<source>/<language>/``, beside ``<source>/other/``
    (the rest), so training can weight them as separate streams without re-sharding."""


@dataclass
class StackConfig:
    """Options of ``python data_prep/shard_stack.py [cfg.yaml] [key=value ...]``."""

    input: list[str] = field(default_factory=list)
    """Raw Stack-format Parquet/JSONL files or source directories; empty builds the local corpus (``corpus``)."""
    sources: dict[str, StackSource] = field(default_factory=dict)
    """Named sources instead of ``input``, in priority order (see ``filter.sources``): filtered with their
    own overrides, deduplicated across each other (a document in several is kept in the first listed),
    one vocabulary for all, shards per source under ``<shards.output>/<source>/``."""
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
        if self.sources and self.input:
            raise ValueError("give either input or sources, not both (each source lists its own input)")
        if self.sources:  # the filter checks every source's overrides now, not after stage 0
            dataclasses.replace(self.filter, input=[], sources=filter_sources(self))
        if self.reuse_tokenizer and not (Path(self.reuse_tokenizer) / "tokenizer.json").is_file():
            raise ValueError(f"reuse_tokenizer: {self.reuse_tokenizer}/tokenizer.json not found; "
                             f"leave reuse_tokenizer empty to train one")


def filter_sources(cfg: StackConfig) -> dict[str, SourceConfig]:
    """The sources as the filter sees them (inputs and overrides; the shard layout is the stack's)."""
    return {name: SourceConfig(list(src.input), dict(src.filter), src.layout) for name, src in cfg.sources.items()}


def _stage(name: str, log: bool) -> float:
    if log:
        print(f"== {name}", flush=True)
    return time.perf_counter()


def _done(start: float, what: str, log: bool) -> None:
    if log:
        print(f"   {what} ({time.perf_counter() - start:.1f} s)", flush=True)


def corpus_stage(cfg: StackConfig, log: bool) -> list[str]:
    """Stage 0: the raw inputs (building the local corpus if none were given)."""
    if cfg.sources:
        return [p for src in cfg.sources.values() for p in src.input]
    if cfg.input:
        return list(cfg.input)
    from llmfoundry_lite.corpus.local_stack import build_local_stack, format_summary

    t = _stage("stage 0: local corpus", log)
    manifest = build_local_stack(cfg.corpus, progress=log)
    _done(t, f"{'reused' if manifest['reused'] else 'built'} {cfg.corpus.output}", log)
    if log:
        print(format_summary(manifest), flush=True)
    return [cfg.corpus.output]


def filter_stage(cfg: StackConfig, raw: list[str], log: bool) -> tuple[dict[str, list[str]], dict | None]:
    """Stage 1: the filtered documents of each source (``{"": [kept/]}`` without sources), or the raw inputs
    when the filter is disabled."""
    if not cfg.filter_enabled:
        return ({name: list(src.input) for name, src in cfg.sources.items()} if cfg.sources else {"": raw}), None
    from llmfoundry_lite.filtering.pipeline import run_filter

    t = _stage("stage 1: filter", log)
    fcfg = dataclasses.replace(cfg.filter, input=[] if cfg.sources else list(raw), sources=filter_sources(cfg))
    stats = run_filter(fcfg, progress=log)
    kept = f"{fcfg.output.rstrip('/')}/kept"  # a string join: output may be a URI
    _done(t, f"kept {stats['kept']:,} of {stats['seen']:,} documents in {kept}", log)
    if not cfg.sources:
        return {"": [kept]}, stats
    if log:
        for name, row in stats["sources"].items():
            print(f"   source {name}: kept {row['kept']:,} of {row['seen']:,}", flush=True)
        for pair, n in stats["dedup"].get("cross_source", {}).items():
            print(f"   cross-source duplicates {pair}: {n:,}", flush=True)
    return {name: [f"{kept}/part-{i:05d}.parquet" for i in row["parts"]] for name, row in stats["sources"].items()}, stats


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


def _language_dir(lang: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in lang.lower())


def stream_plan(cfg: StackConfig, docs: dict[str, list[str]]) -> list[tuple[str, list[str], ShardsConfig]]:
    """(stream name, its documents, its shards config) of every shard set the stage writes."""
    if not cfg.sources:
        return [("", docs[""], cfg.shards)]
    out = []
    for name, inputs in docs.items():
        base = dataclasses.replace(cfg.shards, output=f"{cfg.shards.output.rstrip('/')}/{name}",
                                   staging=f"{cfg.shards.staging.rstrip('/')}/{name}" if cfg.shards.staging else "")
        split = cfg.sources[name].split_languages
        if not split:
            out.append((name, inputs, base))
            continue
        for lang in split:
            sub = _language_dir(lang)
            out.append((f"{name}-{sub}", inputs, dataclasses.replace(
                base, output=f"{base.output}/{sub}", staging=f"{base.staging}/{sub}" if base.staging else "",
                languages=[lang])))
        out.append((f"{name}-other", inputs, dataclasses.replace(
            base, output=f"{base.output}/other", staging=f"{base.staging}/other" if base.staging else "",
            exclude_languages=list(split))))
    return out


def shards_stage(cfg: StackConfig, docs: dict[str, list[str]], tokenizer_dir: str, log: bool) -> dict:
    """Stage 3: train/val MDS shards encoded with ``tokenizer_dir``: one set, or one per source (and language).

    The streams of one source (its languages and ``other``) are written in one pass over its documents
    (``build_shard_streams``): each document is read and tokenized once, whatever the number of languages."""
    from llmfoundry_lite.shards.build import build_shard_streams

    t = _stage("stage 3: shards", log)
    plan = stream_plan(cfg, docs)
    passes: dict[tuple[str, ...], list[int]] = {}  # the streams over the same documents share one pass
    for i, (stream, inputs, _) in enumerate(plan):
        inputs = [p for p in inputs if p]
        if not inputs:
            raise ValueError(f"source {stream!r} kept no documents; nothing to shard")
        passes.setdefault(tuple(inputs), []).append(i)
    built: dict[int, tuple[ShardsConfig, dict]] = {}
    for inputs, members in passes.items():
        scfgs = [dataclasses.replace(plan[i][2], input=list(inputs), tokenizer=tokenizer_dir,
                                     progress=log and plan[i][2].progress) for i in members]
        built.update(zip(members, zip(scfgs, build_shard_streams(scfgs), strict=True), strict=True))
    manifests = {}
    for i, (stream, _, _) in enumerate(plan):
        scfg, manifest = built[i]
        tr, va = manifest["splits"]["train"], manifest["splits"]["val"]
        _done(t, f"{'reused' if manifest['reused'] else 'wrote'} {scfg.output}: train {tr['samples']:,} samples "
                 f"({tr['tokens']:,} tokens), val {va['samples']:,} samples ({va['tokens']:,} tokens)", log)
        manifests[stream] = {**manifest, "output": scfg.output}
    return manifests[""] if "" in manifests else {"streams": manifests}


def run_stack(cfg: StackConfig, log: bool = True) -> dict:
    """Run every stage; return a summary with each stage's manifest or stats."""
    raw = corpus_stage(cfg, log)
    docs, filter_stats = filter_stage(cfg, raw, log)
    tokenizer_dir, tok_manifest = tokenizer_stage(cfg, [p for paths in docs.values() for p in paths], log)
    shards = shards_stage(cfg, docs, tokenizer_dir, log)
    return {"input": raw, "documents": docs, "filter": filter_stats, "tokenizer_dir": tokenizer_dir,
            "tokenizer": tok_manifest, "shards": shards}
