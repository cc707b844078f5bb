"""``python scripts/convert_checkpoint.py CHECKPOINT --output FILE.pt [--weights-only]``.

Turns a sharded (torch distributed-checkpoint) Composer checkpoint into one file in Composer's
full format, ``{"state": {...}, "rng": [...]}`` — what ``state_dict_type: full`` writes — offline,
on CPU, in one process. ``--weights-only`` keeps ``state.model`` and ``state.callbacks.RunInfo``
(enough for inference and export; also accepts a full ``.pt`` to strip its optimizer state).

Memory stays at about one tensor (torch's DCP reader briefly holds a second copy of it): each
tensor is read by its own ``dcp.load`` into a tensor backed by a file in a staging folder next
to the output (page cache the kernel can write out and drop, not process memory), and
``torch.save`` then copies those file-backed tensors into the output. The cost is disk: the
staged tensors take as much space as the output until it is written.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.models.checkpoint_io import (
    MODEL_KEY,
    RUN_INFO_KEY,
    Allocate,
    Checkpoint,
    DcpReader,
    dcp_paths,
    iter_dcp_tensors,
    load_dcp_objects,
    locate_checkpoint,
    read_full,
    read_run_info,
    set_path,
)


def file_backed_allocator(folder: Path) -> Allocate:
    """Allocate each tensor in its own file under ``folder`` (shared mapping: written back to disk,
    not held in anonymous memory)."""
    counter = itertools.count()

    def allocate(key: str, size: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        numel = math.prod(size)
        if numel == 0:  # a zero-length file cannot be mapped
            return torch.empty(size, dtype=dtype)
        path = folder / f"{next(counter):06d}.bin"
        return torch.from_file(str(path), shared=True, size=numel, dtype=dtype).view(size)

    return allocate


def _is_weights(path: tuple) -> bool:
    return path[: len(MODEL_KEY)] == MODEL_KEY or path[: len(RUN_INFO_KEY)] == RUN_INFO_KEY


def sharded_state(ckpt: Checkpoint, allocate: Allocate, weights_only: bool) -> dict[str, Any]:
    """The nested state dict of a sharded checkpoint, rebuilt from its flattened keys (every
    entry, or only the weights and RunInfo), tensors placed by ``allocate`` one at a time."""
    reader = DcpReader(ckpt.path)
    paths = dcp_paths(reader)
    entries = reader.read_metadata().state_dict_metadata
    keep = [k for k in entries if not weights_only or _is_weights(paths[k])]
    tensors = [k for k in keep if isinstance(entries[k], TensorStorageMetadata)]
    objects = [k for k in keep if not isinstance(entries[k], TensorStorageMetadata)]
    nested: dict[str, Any] = {}
    for key, value in load_dcp_objects(reader, objects).items():
        set_path(nested, paths[key], value)
    for key, t in iter_dcp_tensors(reader, tensors, allocate):
        set_path(nested, paths[key], t)
    return nested


def _full_weights(ckpt: Checkpoint) -> dict[str, Any]:
    state = read_full(ckpt)["state"]  # tensors memory-mapped: torch.save reads them page by page
    return {"state": {"model": state["model"], "callbacks": {"RunInfo": state["callbacks"]["RunInfo"]}}}


def check_conversion(checkpoint: str | Path, output: str | Path, weights_only: bool) -> tuple[Checkpoint, Path]:
    """The checkpoint to read and the file to write, refused before anything is written when the
    output would clobber the input, there is nothing to convert, or the result could not be loaded."""
    ckpt = locate_checkpoint(checkpoint)
    out = Path(output).absolute()
    if out.resolve() == ckpt.path or ckpt.path in out.resolve().parents:
        raise ValueError(f"--output {out} would overwrite or sit inside the checkpoint {ckpt.path}")
    if not ckpt.sharded and not weights_only:
        raise ValueError(f"{ckpt.path} is already a single-file checkpoint; pass --weights-only to keep "
                         "only the model weights and RunInfo")
    read_run_info(ckpt)  # refuse early, naming the path, if the result could not be loaded
    return ckpt, out


def convert_checkpoint(checkpoint: str | Path, output: str | Path, weights_only: bool = False) -> Path:
    """Write ``checkpoint`` (sharded directory, save folder, or — with ``weights_only`` — a full
    ``.pt``) as one Composer full-format file at ``output``; returns ``output``."""
    return write_conversion(*check_conversion(checkpoint, output, weights_only), weights_only)


def write_conversion(ckpt: Checkpoint, out: Path, weights_only: bool) -> Path:
    """Stage the tensors beside ``out``, then write it in one ``os.replace`` (see the module docstring)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    # Staging beside the output, not in /tmp: /tmp is often RAM (tmpfs), which would defeat the point.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.staging-") as staging:
        if ckpt.sharded:
            saved = sharded_state(ckpt, file_backed_allocator(Path(staging)), weights_only)
        else:
            saved = _full_weights(ckpt)
        torch.save(saved, partial)
        del saved
    os.replace(partial, out)  # a crash mid-save never leaves a truncated FILE.pt
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The flags (argparse exits 2 naming a bad one)."""
    p = argparse.ArgumentParser(prog="scripts/convert_checkpoint.py", description=__doc__.split("\n\n")[1])
    p.add_argument("checkpoint", help="sharded checkpoint directory, its latest-rank0.pt, or a training save "
                                      "folder (a full .pt only with --weights-only)")
    p.add_argument("--output", required=True, help="single-file checkpoint to write (FILE.pt)")
    p.add_argument("--weights-only", action="store_true",
                   help="keep only state.model and state.callbacks.RunInfo (no optimizer, rng or timestamps)")
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    """Convert and say what was written; a wrong checkpoint or --output ends in one line."""
    args = parse_args(argv)
    with user_errors(ValueError):  # check_conversion's refusals, and a path that is no checkpoint of ours
        ckpt, out = check_conversion(args.checkpoint, args.output, args.weights_only)
    out = write_conversion(ckpt, out, args.weights_only)
    kind = "weights-only" if args.weights_only else "full"
    print(f"wrote {kind} single-file checkpoint {out} ({out.stat().st_size / 1e6:,.1f} MB)")
