"""Which input files a finished piece of work was made from: path + size + modification time.

Every resumable stage (filter passes, vocabulary, shard units) keys its completion records by
these identities, never by a file's position in a sorted listing or by the paths typed on
the command line. A download that finishes, a file replaced in place or a file added between
attempts therefore changes the key of exactly the work it affects. A source directory's
identity covers every file below it. ``check_unchanged`` is called after reading an input, so
a file that changes *while* it is read stops the run with an error naming it instead of
leaving a result that matches neither version.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmfoundry_lite.corpus.readers import InputShard


class InputChangedError(RuntimeError):
    """An input file changed between two reads of one run; the message names it."""


def _tree_stats(root: Path) -> tuple[int, int, str]:
    """Total bytes, newest mtime and a digest of (relpath, size, mtime) of every file below ``root``."""
    digest = hashlib.sha256()
    total, newest = 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            try:
                st = p.lstat()
            except FileNotFoundError:  # vanished while walking: it is not part of this identity
                continue
            total += st.st_size
            newest = max(newest, st.st_mtime_ns)
            digest.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return total, newest, digest.hexdigest()[:16]


REMOTE_VERSION_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created", "ETag", "etag", "md5Hash",
                       "generation")


def _remote_identity(shard: InputShard) -> dict:
    """Size plus the store's own version stamps (mtime / LastModified / ETag / generation) of a remote object."""
    from llmfoundry_lite.corpus.uris import remote_fs

    fs, inner = remote_fs(shard.path)
    info = fs.info(inner)
    stamps = {k: str(info[k]) for k in REMOTE_VERSION_KEYS if info.get(k) is not None}
    if not stamps:  # a store that reports no version: only the bytes themselves can tell a replaced object
        digest = hashlib.sha256()
        with fs.open(inner, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        stamps = {"sha256": digest.hexdigest()}
    return {"path": shard.path, "kind": shard.kind, "size": int(info["size"]), "version": stamps}


def file_identity(shard: InputShard) -> dict:
    """``{path, kind, size, mtime_ns}`` (+ ``tree`` digest for a source directory) of one input.

    Remote URIs use the object's size and the version stamps its store reports."""
    from llmfoundry_lite.corpus.uris import local_path

    if local_path(shard.path) is None:
        return _remote_identity(shard)
    p = Path(shard.path)
    if shard.kind == "source_dir":
        size, mtime, tree = _tree_stats(p)
        return {"path": str(p.resolve()), "kind": shard.kind, "size": size, "mtime_ns": mtime, "tree": tree}
    st = p.stat()
    return {"path": str(p.resolve()), "kind": shard.kind, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def identity_key(identity: dict) -> str:
    """A short stable name for one identity (used in work-file names)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def inputs_key(identities: list[dict]) -> str:
    """Key of an ordered set of inputs: any file added, removed, replaced or reordered changes it."""
    return hashlib.sha256(json.dumps(identities, sort_keys=True).encode()).hexdigest()[:20]


def check_unchanged(shard: InputShard, expected: dict) -> None:
    """Raise ``InputChangedError`` naming ``shard`` when its identity is no longer ``expected``."""
    now = file_identity(shard)
    if now != expected:
        changed = sorted(k for k in now if now[k] != expected.get(k))
        raise InputChangedError(
            f"{shard.path} changed during this run ({', '.join(changed)} differ: was "
            f"{ {k: expected.get(k) for k in changed} }, now { {k: now[k] for k in changed} }); "
            f"rerun when the input is complete — only the work made from it is redone")
