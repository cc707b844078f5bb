"""Where inputs and outputs may live: local paths and URIs.

Inputs may be POSIX paths, ``file://`` URIs, Databricks ``dbfs:/`` paths (read through the
``/dbfs`` mount every Databricks node has) or any fsspec URI (``s3://``, ``gs://``, ``abfss://``
… with the matching fsspec package installed: s3fs, gcsfs, adlfs), listed and read through
that filesystem. Outputs are written in place on a POSIX path (``file://`` and ``dbfs:/``
included); an object-store output is built in a staging directory and published when finished
(``corpus/publish.py``).
"""

from __future__ import annotations

import os
import re
from typing import IO, Any
from urllib.parse import unquote, urlparse

SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DBFS_MOUNT = "/dbfs"


def local_path(path: str) -> str | None:
    """The absolute POSIX path ``path`` names (plain path, ``file://`` or ``dbfs:/``), or None for a remote URI.

    A relative path is made absolute here, on the driver, against its working directory: executors of a
    cluster run in directories of their own, where the same relative name means another place."""
    if path.startswith("file://"):
        return unquote(urlparse(path).path)
    if path.startswith("dbfs:/"):
        return DBFS_MOUNT + "/" + path[len("dbfs:/"):].lstrip("/")
    return None if SCHEME.match(path) else os.path.abspath(path)


def remote_fs(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) of a remote URI; ValueError naming the package to install."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as err:
        raise ValueError(f"{uri}: no filesystem for this URI ({err}); install the fsspec package for it "
                         f"(s3fs, gcsfs, adlfs)") from None


def open_binary(path: str) -> IO[bytes]:
    """A binary reader for a local path or a remote URI."""
    local = local_path(path)
    if local is not None:
        return open(local, "rb")
    fs, inner = remote_fs(path)
    return fs.open(inner, "rb")


def parquet_source(path: str) -> Any:
    """What ``pyarrow.parquet.ParquetFile`` should be given for ``path`` (a local path or an open remote file)."""
    local = local_path(path)
    return local if local is not None else open_binary(path)
