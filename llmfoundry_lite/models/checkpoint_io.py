"""Read Composer checkpoints offline, in both formats, one tensor at a time.

Composer writes two formats (``fsdp_config.state_dict_type``):

- **full**: one file ``ep<E>-ba<B>-rank0.pt``, a ``torch.save`` of ``{"state": {...}, "rng": [...]}``.
  It is opened with ``torch.load(mmap=True)``: tensors stay in the page cache of the file, so
  reading one does not pull the others into memory.
- **sharded**: a torch distributed-checkpoint (DCP) directory ``ep<E>-ba<B>/`` with ``.metadata`` and
  one ``__<rank>_0.distcp`` per rank. Keys are the state dict's paths joined by dots
  (``state.model.model.blocks.0.attn.qkv_proj.weight``); ``Metadata.planner_data`` keeps the
  original paths (``("state", "model", "model.blocks.0...")``). Each tensor is read by its own
  ``torch.distributed.checkpoint.load`` call into a tensor preallocated from the metadata, so no
  process group, no GPU and no more than one tensor's memory are needed.

In both, ``latest-rank0.pt`` in the save folder is a symlink to the newest checkpoint (a file or a
directory). ``state.model`` holds ``ComposerDecoder``'s state dict (our ``Transformer`` under
``model.``), and ``state.callbacks.RunInfo`` the model config and tokenizer that rebuild it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, TensorStorageMetadata

from llmfoundry_lite.models.config import ModelConfig

LATEST = "latest-rank0.pt"
DCP_METADATA = ".metadata"
MODEL_KEY = ("state", "model")
RUN_INFO_KEY = ("state", "callbacks", "RunInfo")
WRAPPER_PREFIX = "model."  # ComposerDecoder.model is our Transformer

Allocate = Callable[[str, torch.Size, torch.dtype], torch.Tensor]


@dataclass(frozen=True)
class Checkpoint:
    """A located checkpoint: ``path`` is the ``.pt`` file or the DCP directory (symlinks resolved)."""

    path: Path
    sharded: bool


@dataclass(frozen=True)
class SavedRunInfo:
    """What ``callbacks.run_info.RunInfo`` stored: enough to rebuild the model and its tokenizer."""

    model_cfg: ModelConfig
    tokenizer_json: str | None


def _newest(folder: Path) -> Path | None:
    found = [p for p in folder.glob("*.pt") if p.is_file()]
    found += [p for p in folder.iterdir() if p.is_dir() and (p / DCP_METADATA).is_file()]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def locate_checkpoint(path: str | Path) -> Checkpoint:
    """A ``.pt`` file, a DCP directory, a ``latest-rank0.pt`` symlink to either, or a save folder
    (its ``latest-rank0.pt``, else its newest checkpoint) → the checkpoint and its format."""
    given = Path(path)
    if not given.exists():
        hint = " (a dangling symlink)" if given.is_symlink() else ""
        raise FileNotFoundError(f"no checkpoint at {given}{hint}")
    p = given.resolve()
    if p.is_file():
        return Checkpoint(p, sharded=False)
    if (p / DCP_METADATA).is_file():
        return Checkpoint(p, sharded=True)
    if any(p.glob("*.distcp")):
        raise FileNotFoundError(f"{given} holds .distcp shards but no {DCP_METADATA}: the sharded save did not "
                                "finish (rank 0 writes .metadata last); use an earlier checkpoint")
    if (p / LATEST).exists():
        return locate_checkpoint(p / LATEST)
    newest = _newest(p)
    if newest is None:
        raise FileNotFoundError(f"{given} is not a checkpoint: no {LATEST}, no *.pt file and no sharded "
                                f"checkpoint directory (one with {DCP_METADATA}) inside")
    return locate_checkpoint(newest)


class DcpReader(dcp.FileSystemReader):
    """A DCP reader that parses ``.metadata`` once: each per-tensor ``load`` would re-read it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._metadata = super().read_metadata()

    def read_metadata(self) -> Metadata:
        return self._metadata


def _dcp_load(state: dict[str, Any], reader: DcpReader) -> None:
    # Our keys are already the flattened ones. The default planner's flattening would also copy the
    # request into closures of recursive helpers — reference cycles that keep each loaded tensor
    # alive until the garbage collector runs, so memory would grow with the checkpoint.
    planner = DefaultLoadPlanner(flatten_state_dict=False, flatten_sharded_tensors=False)
    # no_dist=True always warns that it assumes a single process; that is exactly the intent here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, storage_reader=reader, planner=planner, no_dist=True)


def dcp_paths(reader: DcpReader) -> dict[str, tuple]:
    """Flattened DCP key → the path it had in the saved (nested) state dict."""
    mapping = reader.read_metadata().planner_data
    if not isinstance(mapping, dict):
        raise ValueError(f"{reader.path} has no key mapping in {DCP_METADATA}; was it written by Composer?")
    return mapping


def iter_dcp_tensors(reader: DcpReader, keys: Iterable[str], allocate: Allocate | None = None,
                     ) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, tensor) for each tensor ``key``, loaded by its own ``dcp.load`` into ``allocate(key,
    size, dtype)`` (default: a fresh CPU tensor) — the caller decides how long each one lives."""
    entries = reader.read_metadata().state_dict_metadata
    for key in keys:
        meta = entries[key]
        if not isinstance(meta, TensorStorageMetadata):
            raise TypeError(f"{reader.path}: {key} is not a tensor entry")
        t = allocate(key, meta.size, meta.properties.dtype) if allocate else torch.empty(meta.size, dtype=meta.properties.dtype)
        request = {key: t}
        _dcp_load(request, reader)
        del t  # the request dict holds it; keeping a second name would pin it past the next allocation
        yield key, request.pop(key)


def load_dcp_objects(reader: DcpReader, keys: Iterable[str]) -> dict[str, Any]:
    """The pickled (non-tensor) entries ``keys``, by flattened key."""
    entries = reader.read_metadata().state_dict_metadata
    wanted = {k: None for k in keys}
    bad = [k for k in wanted if not isinstance(entries[k], BytesStorageMetadata)]
    if bad:
        raise TypeError(f"{reader.path}: {bad} are tensor entries, not objects")
    if wanted:
        _dcp_load(wanted, reader)
    return wanted


def _make_room(node: dict | list, key: Any) -> None:
    if isinstance(node, list) and len(node) <= key:
        node.extend([None] * (key + 1 - len(node)))


def set_path(root: dict, path: tuple, value: Any) -> None:
    """``root[path[0]][path[1]]... = value``, creating dicts (or lists, for int keys) on the way —
    how a flattened DCP key returns to the nesting the state dict had when it was saved."""
    node: Any = root
    for key, nxt in zip(path[:-1], path[1:], strict=True):
        _make_room(node, key)
        if (node[key] if isinstance(node, list) else node.get(key)) is None:
            node[key] = [] if isinstance(nxt, int) else {}
        node = node[key]
    _make_room(node, path[-1])
    node[path[-1]] = value


def _under(paths: dict[str, tuple], prefix: tuple) -> list[str]:
    return [k for k, p in paths.items() if p[: len(prefix)] == prefix]


def _run_info_from(state: Any, where: Path) -> SavedRunInfo:
    info = state.get("callbacks", {}).get("RunInfo") if isinstance(state, dict) else None
    if not info or "model_config" not in info:
        raise ValueError(f"{where} carries no RunInfo (model config + tokenizer) in state.callbacks; it was "
                         "not written by train.py (add llmfoundry_lite.callbacks.run_info.RunInfo to the callbacks)")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(info["model_config"]) - known)
    if unknown:
        raise ValueError(f"{where} was saved with model config fields {unknown} that this version of "
                         f"ModelConfig does not have; load it with the code that trained it")
    return SavedRunInfo(ModelConfig(**info["model_config"]), info.get("tokenizer_json"))


def read_full(ckpt: Checkpoint) -> dict[str, Any]:
    """The whole single-file checkpoint, its tensors memory-mapped (read only when touched)."""
    try:
        return torch.load(ckpt.path, map_location="cpu", mmap=True, weights_only=False)
    except RuntimeError as e:  # torch's message alone does not say which file, nor what it expected
        raise ValueError(f"{ckpt.path} is not a Composer checkpoint (torch.save zip file): {e}") from e


def read_run_info(ckpt: Checkpoint) -> SavedRunInfo:
    """The model config and tokenizer stored by ``RunInfo``, without reading any weights."""
    if not ckpt.sharded:
        return _run_info_from(read_full(ckpt).get("state"), ckpt.path)
    reader = DcpReader(ckpt.path)
    paths = dcp_paths(reader)
    state: dict = {}
    for key, value in load_dcp_objects(reader, _under(paths, RUN_INFO_KEY)).items():
        set_path(state, paths[key][1:], value)  # drop the leading "state"
    return _run_info_from(state, ckpt.path)


def read_callback_state(ckpt: Checkpoint, name: str) -> dict | None:
    """The saved ``state_dict`` of callback ``name`` (e.g. ``FinetuneInfo``), or None, without reading weights."""
    if not ckpt.sharded:
        state = read_full(ckpt).get("state", {})
        return state.get("callbacks", {}).get(name) if isinstance(state, dict) else None
    reader = DcpReader(ckpt.path)
    paths = dcp_paths(reader)
    prefix = ("state", "callbacks", name)
    state: dict = {}
    for key, value in load_dcp_objects(reader, _under(paths, prefix)).items():
        set_path(state, paths[key][len(prefix):], value)
    return state or None


def iter_model_state(ckpt: Checkpoint) -> Iterator[tuple[str, torch.Tensor]]:
    """``state.model`` entries one at a time, under their saved names (``model.blocks.0...``)."""
    if not ckpt.sharded:
        model = read_full(ckpt).get("state", {}).get("model")
        if not model:
            raise ValueError(f"{ckpt.path} has no state.model; it is not a Composer training checkpoint")
        yield from model.items()
        return
    reader = DcpReader(ckpt.path)
    paths = dcp_paths(reader)
    keys = _under(paths, MODEL_KEY)
    if not keys:
        raise ValueError(f"{ckpt.path} has no state.model entries; it is not a Composer training checkpoint")
    for key, t in iter_dcp_tensors(reader, keys):
        yield paths[key][len(MODEL_KEY)], t
        del t  # before the next load: a suspended generator's loop variable would keep it alive


def iter_transformer_tensors(ckpt: Checkpoint) -> Iterator[tuple[str, torch.Tensor]]:
    """Our ``Transformer``'s tensors one at a time, by parameter name (``blocks.0.attn.qkv_proj.weight``)."""
    for name, t in iter_model_state(ckpt):
        if not name.startswith(WRAPPER_PREFIX):
            raise ValueError(f"{ckpt.path}: state.model entry {name!r} is not under {WRAPPER_PREFIX!r}; "
                             "was this checkpoint written with ComposerDecoder?")
        yield name.removeprefix(WRAPPER_PREFIX), t
        del t  # see iter_model_state
