"""Build a Stack-format Parquet corpus from the real source code on this machine.

The Stack cannot be downloaded here, so the code already on disk stands in for it:
the Python standard library and site-packages, C/C++ headers, node's bundled
JavaScript, shell and Perl scripts, the JDK's ``src.zip``. Files are enumerated in
sorted order, shuffled by a seeded hash of their path (so a size budget takes a
uniform sample across roots rather than the first root), admitted by The Stack's
rules (not binary, UTF-8, not empty, not over the per-file size limit) and written
as Parquet shards with The Stack's columns plus a ``manifest.json``. The same
machine and config always produce byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llmfoundry_lite.corpus.sources import Candidate, decode_source, walk_directory, walk_zip
from llmfoundry_lite.validate import require_positive

STACK_SCHEMA_COLUMNS = ("id", "content", "path", "lang", "repository_name", "size", "ext")


@dataclass
class LocalStackConfig:
    """Options of ``python data_prep/make_local_stack.py``."""

    output: str = "data/local_stack"
    """Directory that receives ``data-NNNNN.parquet`` shards and ``manifest.json``."""
    roots: list[str] = field(default_factory=list)
    """Directories or .zip archives to walk; empty means every known source tree found on this machine."""
    max_total_bytes: int = 64_000_000
    """Size budget: stop admitting files once their UTF-8 bytes reach this total."""
    max_file_bytes: int = 1_000_000
    """Files larger than this are skipped as ``too_large`` (The Stack's 1 MB limit)."""
    languages: list[str] = field(default_factory=list)
    """Keep only these ``lang`` values (The Stack's names, e.g. Python, C++); empty keeps all."""
    shard_bytes: int = 32_000_000
    """Start a new Parquet shard after this many content bytes."""
    seed: int = 0
    """Seed of the hash that orders files before the size budget is applied."""
    overwrite: bool = False
    """Rebuild even if ``output`` already holds a corpus built with the same config."""

    def __post_init__(self) -> None:
        require_positive(self, ("max_total_bytes", "max_file_bytes", "shard_bytes"))


def default_roots() -> list[tuple[str, str]]:
    """``(label, path)`` of every source tree we know how to find on this machine."""
    paths = sysconfig.get_paths()
    base_stdlib = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["stdlib"]
    roots = [
        ("python-stdlib", base_stdlib),
        ("site-packages", paths["purelib"]),
        ("usr-include", "/usr/include"),
        ("node-modules", "/usr/lib/node_modules"),
        ("usr-share", "/usr/share"),
        ("usr-bin", "/usr/bin"),
        ("usr-lib-python3", "/usr/lib/python3"),
        ("usr-local-lib", "/usr/local/lib"),
    ]
    for jdk in sorted(Path("/usr/lib/jvm").glob("*/lib/src.zip")):
        roots.append((f"jdk-{jdk.parent.parent.name}", str(jdk)))
    seen: set[str] = set()
    found = []
    for label, path in roots:
        real = os.path.realpath(path)
        if os.path.exists(real) and real not in seen:
            seen.add(real)
            found.append((label, real))
    return found


def _label_for(path: str) -> str:
    return Path(path).name.replace(".", "-") or "root"


def enumerate_candidates(roots: list[tuple[str, str]], counts: Counter) -> list[Candidate]:
    """All candidate files under ``roots``; nested roots are walked once, under themselves."""
    dirs = {path for _, path in roots if os.path.isdir(path)}
    out: list[Candidate] = []
    for label, path in roots:
        if os.path.isdir(path):
            nested = frozenset(d for d in dirs if d != path and d.startswith(path + os.sep))
            out.extend(walk_directory(path, label, nested, counts))
        elif zipfile_like(path):
            out.extend(walk_zip(path, label, counts))
        else:
            raise ValueError(f"root {path!r} is neither a directory nor a .zip archive")
    return out


def zipfile_like(path: str) -> bool:
    return path.endswith(".zip") and os.path.isfile(path)


def _order_key(seed: int, cand: Candidate) -> bytes:
    return hashlib.sha256(f"{seed}\0{cand.label}\0{cand.relpath}".encode()).digest()


def admit(cands: list[Candidate], cfg: LocalStackConfig, counts: Counter, progress: bool) -> Iterator[dict]:
    """Yield Stack rows for candidates in seeded-hash order until the byte budget is met."""
    from tqdm import tqdm

    ordered = sorted(cands, key=lambda c: _order_key(cfg.seed, c))
    total = 0
    bar = tqdm(total=cfg.max_total_bytes, unit="B", unit_scale=True, desc="local stack", disable=not progress)
    for i, cand in enumerate(ordered):
        if cand.size > cfg.max_file_bytes:
            counts["too_large"] += 1
            continue
        try:
            data = cand.read_bytes()
        except OSError:
            counts["unreadable"] += 1
            continue
        text, reason = decode_source(data)
        if reason is not None:
            counts[reason] += 1
            continue
        row = cand.stack_row(text, f"{cand.label}/{cand.relpath}", cand.repository_name)
        if total + row["size"] > cfg.max_total_bytes:
            counts["over_budget"] += len(ordered) - i
            break
        total += row["size"]
        bar.update(row["size"])
        yield row
    bar.close()


def _write_shards(rows: Iterator[dict], out: Path, shard_bytes: int) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("id", pa.string()), ("content", pa.string()), ("path", pa.string()), ("lang", pa.string()),
        ("repository_name", pa.string()), ("size", pa.int64()), ("ext", pa.string()),
    ])
    names: list[str] = []
    buf: list[dict] = []
    nbytes = 0

    def flush() -> None:
        nonlocal buf, nbytes
        name = f"data-{len(names):05d}.parquet"
        table = pa.Table.from_pylist(buf, schema=schema)
        pq.write_table(table, out / name, compression="zstd", row_group_size=1024)
        names.append(name)
        buf, nbytes = [], 0

    for row in rows:
        buf.append(row)
        nbytes += row["size"]
        if nbytes >= shard_bytes:
            flush()
    if buf:
        flush()
    return names


def _config_fingerprint(cfg: LocalStackConfig, roots: list[tuple[str, str]]) -> str:
    d = {k: v for k, v in vars(cfg).items() if k not in ("output", "overwrite")}
    d["roots"] = roots
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def build_local_stack(cfg: LocalStackConfig, progress: bool = True) -> dict:
    """Build (or reuse) the corpus described by ``cfg``; return its manifest."""
    roots = [(_label_for(r), os.path.realpath(r)) for r in cfg.roots] if cfg.roots else default_roots()
    out = Path(cfg.output)
    fingerprint = _config_fingerprint(cfg, roots)
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not cfg.overwrite:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("config_fingerprint") == fingerprint:
            manifest["reused"] = True
            return manifest
        raise FileExistsError(
            f"{out} holds a corpus built with a different config; pass overwrite=true or choose another output"
        )
    counts: Counter = Counter()
    cands = enumerate_candidates(roots, counts)
    if cfg.languages:
        wanted = set(cfg.languages)
        counts["language_not_selected"] += sum(c.lang not in wanted for c in cands)
        cands = [c for c in cands if c.lang in wanted]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    per_lang: dict[str, dict[str, int]] = {}

    def tally(rows: Iterator[dict]) -> Iterator[dict]:
        for row in rows:
            s = per_lang.setdefault(row["lang"], {"files": 0, "bytes": 0})
            s["files"] += 1
            s["bytes"] += row["size"]
            yield row

    shards = _write_shards(tally(admit(cands, cfg, counts, progress)), tmp, cfg.shard_bytes)
    manifest = {
        "format": "the-stack-parquet",
        "columns": list(STACK_SCHEMA_COLUMNS),
        "config_fingerprint": fingerprint,
        "roots": [{"label": label, "path": path} for label, path in roots],
        "candidates": len(cands),
        "files": sum(s["files"] for s in per_lang.values()),
        "bytes": sum(s["bytes"] for s in per_lang.values()),
        "languages": dict(sorted(per_lang.items(), key=lambda kv: -kv[1]["bytes"])),
        "skipped": dict(sorted(counts.items())),
        "shards": shards,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    manifest["reused"] = False
    return manifest


def format_summary(manifest: dict) -> str:
    """A terminal table of files and bytes per language plus skip counts."""
    lines = [f"{'language':<20}{'files':>10}{'bytes':>14}{'share':>8}"]
    total = max(manifest["bytes"], 1)
    for lang, s in manifest["languages"].items():
        lines.append(f"{lang:<20}{s['files']:>10,}{s['bytes']:>14,}{s['bytes'] / total:>8.1%}")
    lines.append(f"{'total':<20}{manifest['files']:>10,}{manifest['bytes']:>14,}")
    skipped = ", ".join(f"{k}={v:,}" for k, v in manifest["skipped"].items()) or "none"
    lines.append(f"passed over: {skipped}")
    lines.append(f"roots: {', '.join(r['label'] for r in manifest['roots'])}")
    return "\n".join(lines)
