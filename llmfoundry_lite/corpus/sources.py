"""Enumerate and read source files from directory trees and zip archives.

A *root* is a directory or a ``.zip`` archive (the JDK ships its sources as
``src.zip``). Each file found is a ``Candidate`` that knows its repository-relative
path and size without being read; ``read_text`` then applies The Stack's
admission rules (not binary, valid UTF-8, not empty) and says why a file is refused.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmfoundry_lite.corpus.languages import extension_of, language_from_path, language_from_shebang

SHEBANG_PROBE_BYTES = 256
BINARY_PROBE_BYTES = 8192


@dataclass(frozen=True)
class Candidate:
    """A file that may join the corpus: where it is and what it claims to be."""

    root: str  # directory or zip archive it was found under
    label: str  # short root name used in repository_name, e.g. "python-stdlib"
    relpath: str  # path below the root, '/'-separated
    size: int
    lang: str
    member: bool = False  # True when relpath is a member of the zip archive `root`

    @property
    def repository_name(self) -> str:
        top = self.relpath.split("/", 1)[0] if "/" in self.relpath else "_root"
        return f"{self.label}/{top}"

    def stack_row(self, text: str, path: str, repository_name: str) -> dict:
        """The Stack-format row for this file's decoded ``text``; the id hashes label/relpath."""
        return {
            "id": hashlib.sha1(f"{self.label}/{self.relpath}".encode()).hexdigest(),
            "content": text,
            "path": path,
            "lang": self.lang,
            "repository_name": repository_name,
            "size": len(text.encode("utf-8")),
            "ext": extension_of(self.relpath),
        }

    def read_bytes(self) -> bytes:
        if self.member:
            return _open_zip(self.root).read(self.relpath)
        return (Path(self.root) / self.relpath).read_bytes()


@functools.lru_cache(maxsize=8)
def _open_zip(path: str) -> zipfile.ZipFile:
    # Parsing a JDK src.zip's central directory costs ~0.1 s: do it once per archive.
    return zipfile.ZipFile(path)


def decode_source(data: bytes) -> tuple[str | None, str | None]:
    """Decode file bytes as The Stack admits them: ``(text, None)`` or ``(None, reason)``.

    Reasons: ``empty`` (no non-whitespace content), ``binary`` (a NUL byte in the
    first 8 KiB), ``non_utf8`` (not valid UTF-8). A UTF-8 byte-order mark is dropped.
    """
    if b"\x00" in data[:BINARY_PROBE_BYTES]:
        return None, "binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "non_utf8"
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None, "empty"
    return text, None


def _shebang_language(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(SHEBANG_PROBE_BYTES)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    return language_from_shebang(head.split(b"\n", 1)[0].decode("utf-8", "replace"))


def walk_directory(root: str, label: str, skip_dirs: frozenset[str], counts: dict[str, int]) -> Iterator[Candidate]:
    """Yield candidates below ``root`` in sorted order; count what is passed over.

    Symlinks are not followed (the same file must not enter twice); directories whose
    absolute path is in ``skip_dirs`` (other, more specific roots) are pruned.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in skip_dirs and d != "__pycache__")
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                st = full.lstat()
            except OSError:
                counts["unreadable"] = counts.get("unreadable", 0) + 1
                continue
            if not stat.S_ISREG(st.st_mode):
                counts["not_regular_file"] = counts.get("not_regular_file", 0) + 1
                continue
            lang = language_from_path(name)
            if lang is None and "." not in name:
                lang = _shebang_language(full)
            if lang is None:
                counts["unknown_language"] = counts.get("unknown_language", 0) + 1
                continue
            rel = full.relative_to(root).as_posix()
            yield Candidate(root=root, label=label, relpath=rel, size=st.st_size, lang=lang)


def walk_zip(archive: str, label: str, counts: dict[str, int]) -> Iterator[Candidate]:
    """Yield candidates among the members of a zip archive, sorted by member name."""
    with zipfile.ZipFile(archive) as zf:
        infos = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: i.filename)
    for info in infos:
        lang = language_from_path(info.filename)
        if lang is None:
            counts["unknown_language"] = counts.get("unknown_language", 0) + 1
            continue
        yield Candidate(root=archive, label=label, relpath=info.filename, size=info.file_size, lang=lang, member=True)
