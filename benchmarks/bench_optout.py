"""Cost of the license and opt-out checks per document, against the per-document approach they replace.

The filter stage decides ``license_not_allowed`` / ``license_missing`` / ``opt_out`` from a row's
metadata before any content filter. ``Permissions.compile`` reads and normalizes both lists once per
task; each document is then a few set lookups. The peer, measured in the same run, is the approach
this replaced, reproduced here: every document rebuilt the allow-list set and looked the opt-out
list up in a per-process cache keyed by the whole config serialized to JSON (plus a ``stat`` of
each list file), so its cost grew with the list's length.

Two layouts of the same 20k-repository list: inline in the config (``opt_out.repositories``) and
in a list file (``opt_out.files``). The peer runs on ``--peer-docs`` documents (its cost is per
document and does not depend on which ones); ours runs on all ``--docs``, and the headline is the
wall time of ``--docs`` documents against the ``--entries`` list, compile included (goal: 10k
documents against 20k entries in under 1 s).

    .venv/bin/python benchmarks/bench_optout.py [--docs 10000] [--entries 20000] [--peer-docs 300]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from llmfoundry_lite.filtering.config import FilterConfig, LicenseConfig, OptOutConfig
from llmfoundry_lite.filtering.list_files import read_list_files
from llmfoundry_lite.filtering.permissions import OptOutList, Permissions, parse_list_file


def peer_license_verdict(licenses: list[str] | None, cfg: LicenseConfig) -> tuple[str, str] | None:
    """The license check as it ran per document before: the allow-list set rebuilt for every row."""
    if not cfg.allow:
        return None
    if not licenses:
        return ("license_missing", "no license information") if cfg.no_license == "reject" else None
    allowed = {a.lower() for a in cfg.allow}
    ok = [lic.lower() in allowed for lic in licenses]
    if any(ok) if cfg.match == "any" else all(ok):
        return None
    return "license_not_allowed", f"licenses {licenses} (match={cfg.match})"


@functools.lru_cache(maxsize=4)
def _peer_cached(key: str) -> OptOutList:
    cfg = json.loads(key)
    repos, paths = list(cfg["repositories"]), list(cfg["paths"])
    for f in cfg["files"]:
        more_repos, more_paths = parse_list_file(Path(f).read_bytes(), f)
        repos += more_repos
        paths += more_paths
    return OptOutList(repos, paths)


def peer_opt_out_list(cfg: OptOutConfig) -> OptOutList:
    """The opt-out lookup as it ran per document before: the config serialized as the cache key."""
    stamps = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in cfg.files]
    return _peer_cached(json.dumps({**asdict(cfg), "stamps": stamps}, sort_keys=True))


def peer_verdict(doc: dict, cfg: FilterConfig) -> tuple[str, str] | None:
    verdict = peer_license_verdict(doc.get("licenses"), cfg.license)
    if verdict is None:
        opt_out = peer_opt_out_list(cfg.opt_out)
        verdict = opt_out.verdict(doc["repository_name"], doc["path"]) if len(opt_out) else None
    return verdict


def documents(n: int, entries: int, seed: int = 0) -> list[dict]:
    """``n`` rows: a tenth from listed repositories, the rest from others; mostly permissive licenses."""
    rng = random.Random(seed)
    licenses = [["MIT"], ["Apache-2.0"], ["GPL-3.0"], ["MIT", "GPL-3.0"], []]
    return [{"repository_name": f"owner{rng.randrange(entries)}/repo" if i % 10 == 0 else f"other{i}/repo",
             "path": f"src/m{i}.py", "licenses": rng.choice(licenses)} for i in range(n)]


def configs(entries: int, folder: Path) -> dict[str, FilterConfig]:
    """The same list inline in the config and in a list file."""
    repos = [f"owner{i}/repo" for i in range(entries)]
    listing = folder / "opt_out.txt"
    listing.write_text("# published opt-out list\n" + "\n".join(repos) + "\n")
    base = FilterConfig(license=LicenseConfig(allow=["MIT", "Apache-2.0", "BSD-3-Clause"]))
    return {"inline": replace(base, opt_out=OptOutConfig(repositories=repos)),
            "file": replace(base, opt_out=OptOutConfig(files=[str(listing)]))}


def time_peer(docs: list[dict], cfg: FilterConfig) -> tuple[float, list]:
    _peer_cached.cache_clear()
    start = time.perf_counter()
    verdicts = [peer_verdict(d, cfg) for d in docs]
    return time.perf_counter() - start, verdicts


def time_ours(docs: list[dict], cfg: FilterConfig) -> tuple[float, list]:
    start = time.perf_counter()
    permissions = Permissions.compile(cfg, read_list_files(cfg.opt_out.files))  # read on the driver, compiled once per task
    verdicts = [permissions.verdict(d) for d in docs]
    return time.perf_counter() - start, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--peer-docs", type=int, default=300)
    args = parser.parse_args()
    docs = documents(args.docs, args.entries)
    with tempfile.TemporaryDirectory() as tmp:
        for layout, cfg in configs(args.entries, Path(tmp)).items():
            peer_s, peer_verdicts = time_peer(docs[: args.peer_docs], cfg)
            ours_s, ours_verdicts = time_ours(docs, cfg)
            if ours_verdicts[: args.peer_docs] != peer_verdicts:
                raise SystemExit(f"{layout}: verdicts differ from the peer's")
            rejected = sum(v is not None for v in ours_verdicts)
            peer_per_doc, ours_per_doc = peer_s / len(peer_verdicts), ours_s / len(docs)
            print(f"{layout} list, {args.entries} entries: per document {peer_per_doc * 1e3:.3f} ms before (peer, "
                  f"{len(peer_verdicts)} docs), {ours_per_doc * 1e6:.2f} µs now, compile included "
                  f"({peer_per_doc / ours_per_doc:.1f}x vs peer)")
            print(f"{layout} list: {args.docs} documents x {args.entries} entries in {ours_s:.3f} s vs peer "
                  f"{peer_per_doc * args.docs:.1f} s extrapolated (goal < 1 s: {'met' if ours_s < 1 else 'NOT met'}); "
                  f"{rejected} rejected")


if __name__ == "__main__":
    main()
