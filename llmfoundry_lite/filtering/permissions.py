"""What we may train on: the license allow list and the opt-out list.

The Stack keeps a file when its repository carries a permissive license
(``max_stars_repo_licenses``: the repository's detected SPDX ids) and removes repositories whose
owners opted out ("Am I in The Stack?"). Both are decided from metadata only, before any
content filter runs, and each rejection is counted under its own reason: ``license_not_allowed``,
``license_missing``, ``opt_out``. Entries compare case-insensitively (SPDX ids and GitHub names
are case-insensitive).

Both lists are compiled into frozensets once per task (:meth:`Permissions.compile`, called where a
unit starts: ``shards.filter_shard``), so a document costs a few set lookups whatever the lists'
length. The list files are read on the driver and their bytes shipped with the tasks (``list_files``):
an executor never opens a path that names a file on the driver's machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmfoundry_lite.filtering.list_files import FileContents, shipped

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import FilterConfig, LicenseConfig, OptOutConfig


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


def parse_list_file(data: bytes, path: str) -> tuple[list[str], list[str]]:
    """Repositories (exactly one ``/``) and paths (more) listed in the bytes of list file ``path``; ``#`` starts
    a comment."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"opt_out.files: {path} is not UTF-8 text ({err})") from None
    repos, paths = [], []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            (repos if entry.strip("/").count("/") == 1 else paths).append(entry)
    return repos, paths


def opt_out_list(cfg: OptOutConfig, contents: FileContents) -> OptOutList:
    """The merged opt-out list of ``cfg``: its inline entries and the files it names (their shipped bytes)."""
    repos, paths = list(cfg.repositories), list(cfg.paths)
    for f in cfg.files:
        more_repos, more_paths = parse_list_file(shipped(contents, f, "opt_out.files"), f)
        repos += more_repos
        paths += more_paths
    return OptOutList(repos, paths)


class Permissions:
    """The license allow list and the opt-out list of one config, compiled for one task."""

    def __init__(self, license_cfg: LicenseConfig, opt_out: OptOutList) -> None:
        self.allowed = frozenset(a.lower() for a in license_cfg.allow)
        self.match = license_cfg.match
        self.reject_missing = license_cfg.no_license == "reject"
        self.opt_out = opt_out

    @classmethod
    def compile(cls, cfg: FilterConfig, contents: FileContents) -> Permissions:
        """``cfg``'s lists (files: their bytes in ``contents``) normalized once: once per task, not per document."""
        return cls(cfg.license, opt_out_list(cfg.opt_out, contents))

    def license_verdict(self, licenses: list[str] | None) -> tuple[str, str] | None:
        """``(reason, detail)`` when the licenses are not acceptable, else None (always None without an allow list)."""
        if not self.allowed:
            return None
        if not licenses:
            return ("license_missing", "no license information") if self.reject_missing else None
        ok = [lic.lower() in self.allowed for lic in licenses]
        if all(ok) if self.match == "all" else any(ok):
            return None
        return "license_not_allowed", f"licenses {licenses} (match={self.match})"

    def verdict(self, doc: dict) -> tuple[str, str] | None:
        """The license verdict of ``doc``, else its opt-out verdict, else None."""
        verdict = self.license_verdict(doc.get("licenses"))
        if verdict is None and len(self.opt_out):
            verdict = self.opt_out.verdict(doc["repository_name"], doc["path"])
        return verdict
