"""Is ``save_folder`` one place for every rank? Checked at start-up, before anything is saved.

Checkpoints are written into ``save_folder`` by rank 0 (full) or by every rank (sharded), and
autoresume, export and the run's side files read them back from there, on whichever node runs them.
With several nodes, a relative or node-local ``save_folder`` (the presets' ``runs/${run_name}``)
names a different directory on each node: rank 0's checkpoint lands on one node only, so after a
crash the other nodes' ranks find no ``latest-rank0.pt`` and a sharded checkpoint is split over
disks that no single export can read. Nothing fails until the restart, hours later.

So every multi-rank run probes its ``save_folder`` first. Rank 0 writes a file named and filled with
a run-unique token into it; every rank looks for that file under ``save_folder`` as *it* resolves the
path; an all-gather of the ranks' verdicts tells every rank who could not see it, so all of them fail
together within seconds (no rank is left waiting in a later collective for ranks that exited). The
token travels in a broadcast and the verdicts in an all-gather whose tensors are on the trainer's
device (NCCL accepts only CUDA tensors). An object-store URI (``s3://``, ``gs://``, ``oci://``,
``azure://``, ``dbfs:/``: Composer's remote ``save_folder``) is shared by construction and not probed.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import torch
from composer.utils import dist
from composer.utils.file_helpers import parse_uri

OBJECT_STORES = ("azure", "dbfs", "gs", "oci", "s3")
"""URI schemes Composer 0.32.1 saves checkpoints to (``maybe_create_remote_uploader_downloader_from_uri``)."""
VISIBILITY_WAIT_S = 5.0
"""How long a rank keeps looking for the probe: NFS-style attribute caches can hide a file created on
another client for a moment; a node-local directory never shows it, so failing costs only this wait."""
PROBE_PREFIX = ".shared-fs-probe-"


def object_store_backend(save_folder: str) -> str | None:
    """The object store of a URI ``save_folder`` (``s3``, ...), None for a filesystem path; an
    unsupported scheme (``file://``, ``hdfs://``) is refused with the choices."""
    backend, _, _ = parse_uri(save_folder)
    if not backend:
        return None
    if backend not in OBJECT_STORES:
        raise ValueError(f"save_folder={save_folder!r}: Composer cannot save to {backend}:// URIs; use a "
                         f"filesystem path or one of {', '.join(f'{b}://' for b in OBJECT_STORES)}")
    return backend


def check_shared_save_folder(save_folder: str, device: torch.device) -> str:
    """Fail on every rank, naming ``save_folder`` and the fix, unless all ranks see one directory.

    Call it on every rank right after the process group starts (it runs two collectives on
    ``device``); it returns a line for the run's header. One process, or an object-store URI, is
    accepted without a probe.
    """
    backend = object_store_backend(save_folder)
    if backend is not None:
        return f"save_folder: {save_folder} (object store {backend}://, shared by all ranks)"
    world = dist.get_world_size()
    if world == 1:
        return f"save_folder: {save_folder} (one process)"
    token = torch.zeros(1, dtype=torch.int64, device=device)
    write_error = ""
    if dist.get_global_rank() == 0:
        token[0] = secrets.randbits(62) + 1  # 0 stays "no token": a rank 0 that could not write says so
        write_error = _write_probe(Path(save_folder), int(token.item()))
        if write_error:
            token[0] = 0
    dist.broadcast(token, src=0)  # rank 0 reaches this only after writing: the file exists for every reader
    value = int(token.item())
    seen = torch.tensor([int(value != 0 and _sees_probe(Path(save_folder), value)), dist.get_node_rank()],
                        dtype=torch.int64, device=device)
    verdicts = [t.tolist() for t in dist.all_gather(seen)]
    if dist.get_global_rank() == 0 and value:
        _probe_path(Path(save_folder), value).unlink(missing_ok=True)  # everyone has looked (all-gather)
    if value == 0:
        raise ValueError(f"save_folder={save_folder!r}: rank 0 cannot write there ({write_error}); "
                         f"give a writable directory that every node mounts")
    blind = [rank for rank, (ok, _) in enumerate(verdicts) if not ok]
    if blind:
        nodes = sorted({node for ok, node in verdicts if not ok})
        relative = "" if Path(save_folder).is_absolute() else (
            " It is a relative path, so each launcher resolves it against its own working directory.")
        raise ValueError(
            f"save_folder={save_folder!r} is not one shared directory: global ranks {blind} (node(s) {nodes}) "
            f"do not see the probe file rank 0 wrote there, so checkpoints would land on rank 0's node only "
            f"and autoresume and export would break.{relative} Set save_folder to an absolute path on a "
            f"filesystem every node mounts (save_folder=/shared/runs/<name>) or to an object-store URI "
            f"(s3://bucket/runs/<name>, gs://..., oci://...)")
    return f"save_folder: {Path(save_folder).resolve()} (one directory, seen by all {world} ranks)"


def _probe_path(folder: Path, token: int) -> Path:
    return folder / f"{PROBE_PREFIX}{token:016x}"


def _write_probe(folder: Path, token: int) -> str:
    """Write the probe (rank 0); the OS error as text if it cannot, so the other ranks hear about it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe_path(folder, token).write_text(f"{token:016x} {socket.gethostname()} {os.getpid()}\n")
    except OSError as err:
        return str(err)
    return ""


def _sees_probe(folder: Path, token: int) -> bool:
    """Whether this rank finds rank 0's probe (with this run's token) under ``folder`` within the wait."""
    path = _probe_path(folder, token)
    deadline = time.monotonic() + VISIBILITY_WAIT_S
    while True:
        try:
            if path.read_text().split()[0] == f"{token:016x}":
                return True
        except (OSError, IndexError):
            pass  # not (yet) visible from this node, or still being written: look again until the deadline
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
