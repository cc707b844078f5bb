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
The upload streams file by file (memory bounded by fsspec's block size, not by the tree). Given an
engine's map (``publish(..., map_fn=)``; Spark's executors), tasks over groups of files hash and upload
them, and the caller only lists, compares, deletes, and writes the marker and ``_published.json`` after
every task has returned.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from llmfoundry_lite.corpus.units import MapFn, inline_map, task_groups
from llmfoundry_lite.corpus.uris import local_path, remote_fs

PUBLISHED_FILE = "_published.json"
PUBLISH_FILES_PER_TASK = 16  # most files one task hashes or uploads (``units.task_groups``)
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


def _hash_group(staging: str, rels: list[str]) -> list[str]:
    """A task: the sha256 of each of ``rels`` (paths below ``staging``)."""
    return [_sha256(Path(staging) / rel) for rel in rels]


def _upload(fs: Any, root: str, staging: str, rels: list[str]) -> None:
    for rel in rels:
        fs.makedirs(f"{root}/{rel}".rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(Path(staging) / rel), f"{root}/{rel}")


def _upload_group(staging: str, uri: str, rels: list[str]) -> int:
    """A task: upload ``rels`` (paths below ``staging``) to the same paths below ``uri``."""
    fs, root = remote_fs(uri)
    _upload(fs, root.rstrip("/"), staging, rels)
    return len(rels)


def _in_tasks(fs: Any, map_fn: MapFn | None) -> MapFn:
    """Where the files are hashed and uploaded: ``map_fn``'s tasks, or here. A store that lives in one process
    (fsspec's ``memory://``) is always written from here: a task elsewhere would fill a store of its own."""
    from fsspec.implementations.memory import MemoryFileSystem

    return inline_map if map_fn is None or isinstance(fs, MemoryFileSystem) else map_fn


def publish(staging: str, uri: str, marker: str, exclude: tuple[str, ...] = (),
            map_fn: MapFn | None = None) -> dict[str, int]:
    """Upload the finished tree ``staging`` to ``uri``; returns counts (uploaded, unchanged, deleted).

    ``map_fn`` (an engine's map, ``SparkScope.map``): hash and upload the files in its tasks, over groups of
    files, instead of here; this process then only lists the files, compares them with ``_published.json``,
    deletes, and writes the marker and ``_published.json`` last (``staging`` must be seen by the tasks)."""
    fs, root = remote_fs(uri)
    root = root.rstrip("/")
    local = _files(Path(staging), (*exclude, PUBLISHED_FILE))
    if marker not in local:
        raise ValueError(f"publish {staging}: the stage left no {marker}; nothing is published unfinished")
    run = _in_tasks(fs, map_fn)
    rels = sorted(local)
    groups = task_groups(rels, PUBLISH_FILES_PER_TASK)
    digests = dict(zip(rels, (d for ds in run(_hash_group, [(staging, g) for g in groups]) for d in ds), strict=True))
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
    parts = [rel for rel in changed if rel != marker]
    run(_upload_group, [(staging, uri, g) for g in task_groups(parts, PUBLISH_FILES_PER_TASK)])
    _upload(fs, root, staging, [marker])  # the marker last: every task above has returned
    with fs.open(f"{root}/{PUBLISHED_FILE}", "wb") as f:
        f.write(json.dumps({"marker": marker, "files": digests}, indent=1, sort_keys=True).encode())
    return counts
