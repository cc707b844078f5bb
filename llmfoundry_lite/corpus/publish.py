"""Outputs on object stores: build in a staging directory, then publish the finished tree.

Object stores (``s3://``, ``gs://``, ``abfss://`` …) have no rename, so the completion markers and
atomic replaces the stages rely on cannot live there. A stage whose output is such a URI runs in
a staging directory (a local or shared POSIX path; under Spark every executor must see it) and,
once finished, uploads its tree through fsspec — the same pattern as streaming's ``MDSWriter``
with ``out=(local, remote)``:

* files whose bytes differ from what the last publish recorded are uploaded (a rerun that changed
  nothing uploads nothing; a changed part is replaced);
* remote files this tree no longer holds are deleted;
* the stage's marker file (``stats.json``, ``manifest.json``) goes up after every other file, and
  ``_published.json`` (relative path → sha256) after it, so a reader that sees the marker sees a
  complete tree.

Bookkeeping folders (the filter's ``work/``, the shards' ``.units/``) stay in staging: keep the
staging directory to resume or to rerun incrementally; without it the stage starts over.
The upload streams file by file (memory bounded by fsspec's block size, not by the tree).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from llmfoundry_lite.corpus.uris import local_path, remote_fs

PUBLISHED_FILE = "_published.json"
STAGING_ROOT = Path("~/.cache/llmfoundry_lite/staging")


def staging_dir(output: str, staging: str | None, key: str, shared: bool) -> tuple[str, str | None]:
    """(directory the stage writes, remote URI to publish to or None) for an output setting.

    ``shared`` says the stage runs on several machines (Spark), where a private default staging
    directory would not be seen by the executors: ``staging`` must then be given.
    """
    local = local_path(output)
    if local is not None:
        if staging:
            raise ValueError(f"{key}.staging is only for object-store outputs; {output} is written in place")
        return local, None
    remote_fs(output)  # fail now, naming the fsspec package to install, not after the whole stage
    if staging:
        path = local_path(staging)
        if path is None:
            raise ValueError(f"{key}.staging must be a local or shared POSIX path (or file://, dbfs:/), got {staging}")
        return path, output
    if shared:
        raise ValueError(f"{key}: {output} is an object store; a Spark run needs {key}.staging=PATH on a "
                         f"filesystem every executor sees (dbfs:/, NFS) to build the output before publishing")
    digest = hashlib.sha256(output.encode()).hexdigest()[:16]
    return str(STAGING_ROOT.expanduser() / digest), output


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path, exclude: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in exclude]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel not in exclude and not name.endswith(".tmp"):
                found[rel] = Path(dirpath) / name
    return found


def _read_published(fs: Any, root: str) -> dict[str, str]:
    path = f"{root}/{PUBLISHED_FILE}"
    if not fs.exists(path):
        return {}
    with fs.open(path, "rb") as f:
        return json.loads(f.read())["files"]


def publish(staging: str, uri: str, marker: str, exclude: tuple[str, ...] = ()) -> dict[str, int]:
    """Upload the finished tree ``staging`` to ``uri``; returns counts (uploaded, unchanged, deleted)."""
    fs, root = remote_fs(uri)
    root = root.rstrip("/")
    local = _files(Path(staging), (*exclude, PUBLISHED_FILE))
    if marker not in local:
        raise ValueError(f"publish {staging}: the stage left no {marker}; nothing is published unfinished")
    digests = {rel: _sha256(path) for rel, path in local.items()}
    before = _read_published(fs, root)
    remote_now = {p[len(root) + 1:] for p in fs.find(root)} if fs.exists(root) else set()
    changed = sorted(rel for rel in local if rel not in remote_now or before.get(rel) != digests[rel])
    stale = sorted(remote_now - set(local) - {PUBLISHED_FILE})
    counts = {"uploaded": len(changed), "unchanged": len(local) - len(changed), "deleted": len(stale)}
    if not changed and not stale:
        return counts
    if marker in remote_now:  # the old marker goes first: a reader never sees it beside a half-new tree
        fs.rm(f"{root}/{marker}")
        if marker not in changed:
            changed.append(marker)
            counts["uploaded"] += 1
            counts["unchanged"] -= 1
    for rel in stale:
        fs.rm(f"{root}/{rel}")
    for rel in sorted(changed, key=lambda r: r == marker):  # the marker last
        fs.makedirs(f"{root}/{rel}".rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(local[rel]), f"{root}/{rel}")
    with fs.open(f"{root}/{PUBLISHED_FILE}", "wb") as f:
        f.write(json.dumps({"marker": marker, "files": digests}, indent=1, sort_keys=True).encode())
    return counts
