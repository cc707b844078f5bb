"""Object stores for tests that count every byte read and report version fields as the real stores name them.

fsspec's in-memory filesystem registered under a real store's protocol (``hf``, ``s3``), so the identity code
takes that store's branch. ``info()`` returns the fields the real library returns: huggingface_hub's
``HfFileSystem.info`` gives ``blob_id``, ``lfs`` (``{size, sha256, pointer_size}``) and ``last_commit`` only
with ``expand_info=True`` (without it, for a path it did not just list, only ``name``, ``size`` and ``type``);
s3fs's ``info`` (a ``head_object``) gives ``ETag``, ``LastModified`` and ``VersionId`` (s3fs is not installed
here: the names are those of s3fs's ``S3FileSystem._info``). Every read handle (``open``) and every ``cat`` is
recorded with the bytes it handed out.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import _registry


class _CountingFile(io.BytesIO):
    """A read handle that adds every byte it hands out to its own slot of the store's ``reads``."""

    def __init__(self, data: bytes, tally: list[int]) -> None:
        super().__init__(data)
        self.tally, self.slot = tally, len(tally)
        tally.append(0)

    def _count(self, data: bytes) -> bytes:
        self.tally[self.slot] += len(data)
        return data

    def read(self, n: int | None = -1) -> bytes:
        return self._count(super().read(n))

    def read1(self, n: int | None = -1) -> bytes:
        return self._count(super().read1(n))

    def readline(self, n: int | None = -1) -> bytes:
        return self._count(super().readline(n))

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.tally[self.slot] += n
        return n

    def __next__(self) -> bytes:
        return self._count(super().__next__())


class VersionedStore(MemoryFileSystem):
    """In-memory objects with the version fields a test sets; ``reads``: bytes handed out, per object and handle.

    ``install`` gives each test its own tables (``store``, ``versions``, ``reads``, ``info_calls``)."""

    scheme: ClassVar[str]
    versions: ClassVar[dict[str, dict]]
    reads: ClassVar[dict[str, list[int]]]
    info_calls: ClassVar[list[dict]]

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        return MemoryFileSystem._strip_protocol(str(path).removeprefix(f"{cls.scheme}://"))

    def unstrip_protocol(self, name: str) -> str:
        return f"{self.scheme}://{name.lstrip('/')}"

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            return super()._open(path, mode, **kwargs)
        path = self._strip_protocol(path)
        return _CountingFile(self.store[path].getvalue(), self.reads.setdefault(path, []))

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        data = super().cat_file(path, start, end, **kwargs)
        self.reads.setdefault(self._strip_protocol(path), []).append(len(data))
        return data

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        entries = super().ls(path, detail, **kwargs)
        return [{k: v for k, v in e.items() if k != "created"} for e in entries] if detail else entries

    def info(self, path: str, **kwargs: Any) -> dict:
        self.info_calls.append(kwargs)
        out = {k: v for k, v in super().info(path).items() if k != "created"}  # no clock: only version fields
        if out["type"] == "file" and self.reports_versions(kwargs):
            out.update(self.versions.get(out["name"], {}))
        return out

    def reports_versions(self, kwargs: dict) -> bool:
        return True

    def put_object(self, path: str, data: bytes, **version: Any) -> str:
        """Write ``data`` at ``path`` (no scheme) with the store's version fields ``version``; returns its URI."""
        self.pipe_file(path, data)
        self.versions[self._strip_protocol(path)] = version
        return self.unstrip_protocol(self._strip_protocol(path))

    def content_reads(self, path: str) -> int:
        """Handles that read at least half of the object (a Parquet footer or a JSONL file's first line read less)."""
        size = self.store[path].size
        return sum(1 for n in self.reads.get(path, []) if 2 * n >= size)

    def probes(self, path: str) -> int:
        """Handles that read less than half of the object (Parquet footers, a JSONL file's first line)."""
        return len(self.reads.get(path, [])) - self.content_reads(path)


class HfStore(VersionedStore):
    """The Hugging Face Hub as ``HfFileSystem`` answers ``info``: version fields only when expanded."""

    protocol = "hf"
    scheme = "hf"

    def reports_versions(self, kwargs: dict) -> bool:
        return bool(kwargs.get("expand_info"))


class S3Store(VersionedStore):
    """S3 as s3fs answers ``info``: ``ETag``, ``LastModified``, ``VersionId``."""

    protocol = ("s3", "s3a")
    scheme = "s3"


def install(monkeypatch: Any, store: type[VersionedStore]) -> VersionedStore:
    """Register ``store`` under its protocols for one test, with empty tables; ``monkeypatch`` restores both."""
    for name, empty in (("store", {}), ("pseudo_dirs", [""]), ("versions", {}), ("reads", {}), ("info_calls", [])):
        monkeypatch.setattr(store, name, empty, raising=False)
    for protocol in (store.protocol,) if isinstance(store.protocol, str) else store.protocol:
        monkeypatch.setitem(_registry, protocol, store)
    return store()
