"""What we may train on: the license allow list and the opt-out list.

The Stack keeps a file when its repository carries a permissive license
(``max_stars_repo_licenses``: the repository's detected SPDX ids) and removes repositories whose
owners opted out ("Am I in The Stack?"). Both are decided from metadata only, before any
content filter runs, and each rejection is counted under its own reason: ``license_not_allowed``,
``license_missing``, ``opt_out``. Entries compare case-insensitively (SPDX ids and GitHub names
are case-insensitive).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import LicenseConfig, OptOutConfig


def license_verdict(licenses: list[str] | None, cfg: LicenseConfig) -> tuple[str, str] | None:
    """``(reason, detail)`` when the licenses are not acceptable under ``cfg``, else None."""
    if not cfg.allow:
        return None
    if not licenses:
        return ("license_missing", "no license information") if cfg.no_license == "reject" else None
    allowed = {a.lower() for a in cfg.allow}
    ok = [lic.lower() in allowed for lic in licenses]
    if any(ok) if cfg.match == "any" else all(ok):
        return None
    return "license_not_allowed", f"licenses {licenses} (match={cfg.match})"


class OptOutList:
    """Repositories (``owner/name``) and files (``owner/name/path`` or a bare path) to remove."""

    def __init__(self, repositories: list[str], paths: list[str]) -> None:
        self.repositories = frozenset(r.strip().strip("/").lower() for r in repositories if r.strip())
        self.paths = frozenset(_path_key(p) for p in paths if p.strip())

    def __len__(self) -> int:
        return len(self.repositories) + len(self.paths)

    def verdict(self, repository: str, path: str) -> tuple[str, str] | None:
        """``("opt_out", detail)`` when the repository or the file is listed, else None."""
        repo = repository.strip("/").lower()
        if repo and repo in self.repositories:
            return "opt_out", f"repository {repository} opted out"
        key = _path_key(f"{repository}/{path}" if repo else path)
        if key in self.paths:
            return "opt_out", f"file {repository + '/' if repo else ''}{path} opted out"
        return None


def _path_key(path: str) -> str:
    """Repository part lower-cased (GitHub names are case-insensitive), file path as given."""
    parts = path.strip().strip("/").split("/", 2)
    if len(parts) == 3:
        return f"{parts[0].lower()}/{parts[1].lower()}/{parts[2]}"
    return path.strip().strip("/")


def read_list_file(path: str) -> tuple[list[str], list[str]]:
    """Repositories (exactly one ``/``) and paths (more) listed in ``path``; ``#`` starts a comment."""
    repos, paths = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            (repos if entry.strip("/").count("/") == 1 else paths).append(entry)
    return repos, paths


@functools.lru_cache(maxsize=4)
def _cached(key: str) -> OptOutList:
    cfg = json.loads(key)
    repos, paths = list(cfg["repositories"]), list(cfg["paths"])
    for f in cfg["files"]:
        more_repos, more_paths = read_list_file(f)
        repos += more_repos
        paths += more_paths
    return OptOutList(repos, paths)


def opt_out_list(cfg: OptOutConfig) -> OptOutList:
    """The merged opt-out list of ``cfg``, read once per process while the config and its files are the
    same (a file's size and mtime are part of the key: an updated list is re-read in a long-lived
    worker, a notebook or a reused Spark Python worker)."""
    stamps = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in cfg.files]
    return _cached(json.dumps({**asdict(cfg), "stamps": stamps}, sort_keys=True))
