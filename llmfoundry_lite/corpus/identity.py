"""Which input files a finished piece of work was made from: path + size + modification time (a remote
object: path + size + the version its store reports).

Every resumable stage (filter passes, vocabulary, shard units) keys its completion records by
these identities, never by a file's position in a sorted listing or by the paths typed on
the command line. A download that finishes, a file replaced in place or a file added between
attempts therefore changes the key of exactly the work it affects. A source directory's
identity covers every file below it. ``check_unchanged`` is called after reading an input, so
a file that changes *while* it is read stops the run with an error naming it instead of
leaving a result that matches neither version.

A remote object is identified from metadata alone (``STORE_VERSION_FIELDS``: Hugging Face's LFS sha256 and
blob id, S3's ETag and VersionId, GCS's generation and md5Hash): identifying and checking it reads none of its
bytes. Only an object whose store reports no version field is read to be identified: once per run, where its
units are planned (``units.plan_files``: a task, on Spark an executor), to hash its bytes; the checks after
that compare its size.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


# The fields of ``fs.info()`` that change whenever an object's bytes do, by the store's fsspec protocol, named as
# the libraries name them: huggingface_hub's HfFileSystem gives ``lfs`` (with the LFS object's ``sha256``; large
# files only) and ``blob_id`` (the git blob id; every file); s3fs gives ``ETag`` and ``VersionId`` (versioned
# buckets); gcsfs ``generation`` and ``md5Hash``. Each changes whenever the object is rewritten (the hashes
# and the blob id only when its bytes change).
STORE_VERSION_FIELDS: dict[str, tuple[str, ...]] = {
    "hf": ("lfs.sha256", "blob_id"),
    "s3": ("ETag", "VersionId"), "s3a": ("ETag", "VersionId"),
    "gs": ("generation", "md5Hash"), "gcs": ("generation", "md5Hash"),
}
# Any other store: whichever of these its ``info()`` reports (a timestamp is a version as good as the store's clock).
OTHER_VERSION_FIELDS = ("ETag", "etag", "VersionId", "version_id", "generation", "md5Hash", "mtime", "LastModified",
                        "last_modified", "updated", "created")
# What ``info()`` must be asked for those fields: HfFileSystem reports only name/size/type for a path it is asked
# about afresh unless told to expand (``hf_file_system.py``: ``info(..., expand_info=True)``).
INFO_KWARGS: dict[str, dict] = {"hf": {"expand_info": True}}
CONTENT_DIGEST = "sha256"  # the version of an object whose store reports none: its bytes' digest


def _store(fs: Any) -> str:
    """The first of the filesystem's protocols that ``STORE_VERSION_FIELDS`` knows ('' for another store)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return next((p for p in protocols if p in STORE_VERSION_FIELDS), "")


def version_stamps(fs: Any, info: dict) -> dict[str, str]:
    """The version fields ``info`` (from ``fs.info``) holds, ``{field: value}``; empty when the store reports none."""
    stamps = {}
    for name in STORE_VERSION_FIELDS.get(_store(fs), OTHER_VERSION_FIELDS):
        value: Any = info
        for part in name.split("."):  # "lfs.sha256": a field of a nested dict (HfFileSystem's BlobLfsInfo)
            value = value.get(part) if isinstance(value, dict) else None
        if value not in (None, ""):
            stamps[name] = str(value)
    return stamps


def _content_digest(fs: Any, inner: str) -> str:
    digest = hashlib.sha256()
    with fs.open(inner, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _remote_identity(shard: InputShard, known_digest: str | None) -> dict:
    """Size plus the version fields the object's store reports (``STORE_VERSION_FIELDS``): metadata, no bytes read.

    A store that reports no version leaves only the bytes to tell a replaced object: they are read once and
    hashed, unless ``known_digest`` (taken earlier in the run) is given — then only the size is compared."""
    from llmfoundry_lite.corpus.uris import remote_fs

    fs, inner = remote_fs(shard.path)
    fs.invalidate_cache(inner)  # a listing cached earlier in this process must not hide a replaced object
    info = fs.info(inner, **INFO_KWARGS.get(_store(fs), {}))
    stamps = version_stamps(fs, info) or {CONTENT_DIGEST: known_digest or _content_digest(fs, inner)}
    return {"path": shard.path, "kind": shard.kind, "size": int(info["size"]), "version": stamps}


def file_identity(shard: InputShard, known_digest: str | None = None) -> dict:
    """``{path, kind, size, mtime_ns}`` (+ ``tree`` digest for a source directory) of one input.

    Remote URIs: ``{path, kind, size, version}``, the version from the store's metadata (``_remote_identity``);
    ``known_digest``: the content digest an earlier identity of this run holds, so it is not read again."""
    from llmfoundry_lite.corpus.uris import local_path

    if local_path(shard.path) is None:
        return _remote_identity(shard, known_digest)
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
    """Raise ``InputChangedError`` naming ``shard`` when its identity is no longer ``expected``.

    Reads no bytes: an object identified by its content digest (its store reports no version) is compared by size."""
    now = file_identity(shard, expected.get("version", {}).get(CONTENT_DIGEST))
    if now != expected:
        changed = sorted(k for k in now if now[k] != expected.get(k))
        raise InputChangedError(
            f"{shard.path} changed during this run ({', '.join(changed)} differ: was "
            f"{ {k: expected.get(k) for k in changed} }, now { {k: now[k] for k in changed} }); "
            f"rerun when the input is complete — only the work made from it is redone")
