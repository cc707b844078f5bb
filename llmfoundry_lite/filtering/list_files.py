"""The list files a filter task decides with (opt-out lists, benchmark JSONL), read once on the driver and
shipped with the tasks.

A path a user typed names a file on the driver's machine. An executor on another host may see nothing
there, or another version of it, so tasks never open these files: the driver reads them (the same bytes
whose hashes enter the config fingerprint) and the engine ships the contents with the tasks — one copy
per executor under Spark (``SparkScope.map`` broadcasts its task list, and pickling keeps one copy of an
object the tasks share).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from llmfoundry_lite.corpus.uris import open_binary

FileContents = Mapping[str, bytes]


def read_list_files(paths: Iterable[str]) -> dict[str, bytes]:
    """``{path: bytes}`` of every file in ``paths``, read here (local paths, ``file://`` or fsspec URIs)."""
    contents: dict[str, bytes] = {}
    for path in paths:
        if path not in contents:
            try:
                with open_binary(path) as fh:
                    contents[path] = fh.read()
            except OSError as err:
                raise ValueError(f"cannot read list file {path}: {err}") from err
    return contents


def shipped(contents: FileContents, path: str, key: str) -> bytes:
    """The bytes of ``path`` the driver shipped; an error naming the config key when it did not."""
    try:
        return contents[path]
    except KeyError:
        raise RuntimeError(f"{key}: {path} was not read on the driver and shipped with the task "
                           f"(shipped: {sorted(contents)})") from None
