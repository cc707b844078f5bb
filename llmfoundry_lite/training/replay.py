"""Replay a loss spike or a rollback: rebuild the exact samples a record names and score each one.

A spike record names its batch; a rollback record (``callbacks/rollback.py``) also names the skipped
window and the weights it restored (``rollbacks/rollback-<n>-ba<step>.pt``): the window's samples are
scored with exactly those weights, each named by stream and shard file (the shards carry tokens only,
no source path or document id, so a decoded snippet stands in for them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from streaming import StreamingDataset
from tokenizers import Tokenizer
from torch.utils.data import default_collate

from llmfoundry_lite.config import load_config
from llmfoundry_lite.models.load import load_for_inference
from llmfoundry_lite.objectives import build_objective
from llmfoundry_lite.training.config import TrainConfig
from llmfoundry_lite.training.data import ObjectiveDataset, dataset_sources

_CKPT = re.compile(r"^ep\d+-ba(\d+)(-rank0\.pt)?$")  # full file, or sharded (DCP) directory


def read_spikes(save_folder: str | Path) -> list[dict]:
    path = Path(save_folder) / "loss_spikes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: this run recorded no loss spike")
    return [json.loads(line) for line in path.read_text().splitlines()]


def checkpoint_before(save_folder: str | Path, step: int) -> Path:
    """The newest checkpoint written before batch ``step`` (0-based) ran: ``ep*-ba<N>-rank0.pt`` (or the
    sharded directory ``ep*-ba<N>/``) holds the weights after N batches, so N == step replays exactly
    and N < step approximately."""
    found = {int(m.group(1)): p for p in Path(save_folder).iterdir() if (m := _CKPT.match(p.name))
             and (p.is_file() if m.group(2) else (p / ".metadata").is_file())}
    usable = [b for b in found if b <= step]
    if not usable:
        raise FileNotFoundError(f"no checkpoint at or before step {step} in {save_folder}; have {sorted(found)}")
    return found[max(usable)]


def replay_dataset(cfg: TrainConfig, tokenizer: Tokenizer, epoch: int) -> ObjectiveDataset:
    """The run's training samples by global index (same streams, same objective draws for ``epoch``)."""
    objective = build_objective(cfg.objective, tokenizer, cfg.model.max_seq_len)
    dataset = ObjectiveDataset(objective=objective, shuffle=False, batch_size=1,
                               **dataset_sources(cfg.train_loader, weighted=False))
    dataset._epoch = epoch
    return dataset


def describe_samples(dataset: ObjectiveDataset, tokenizer: Tokenizer, cfg: TrainConfig,
                     sample_indices: list[int]) -> dict[int, dict[str, str]]:
    """Where each sample comes from: its stream, its shard file and the start of its text."""
    names = list(cfg.train_loader.stream_dirs())
    out = {}
    for i in sample_indices:
        shard_id, _ = dataset.spanner[i]
        stream = names[int(dataset.stream_per_shard[shard_id])]
        shard = dataset.shards[shard_id].file_pairs[0][0].basename
        tokens = StreamingDataset.get_item(dataset, i)["tokens"][:48].tolist()
        text = " ".join(tokenizer.decode(tokens).split())[:70]
        out[i] = {"stream": stream, "shard": f"{cfg.train_loader.split}/{shard}", "text": text}
    return out


def replay_spike(save_folder: str | Path, spike: int = -1) -> dict:
    """Per-sample loss of a spike's batch under the checkpoint preceding it; for a rollback, of the whole
    skipped window under the weights the rollback restored."""
    record = read_spikes(save_folder)[spike]
    cfg = load_config(TrainConfig, Path(save_folder) / "config.yaml")
    rb = record.get("rollback")
    indices = rb["skipped_sample_indices"] if rb else record["sample_indices"]
    if rb and rb.get("restored_weights") and (Path(save_folder) / rb["restored_weights"]).is_file():
        ckpt = Path(save_folder) / rb["restored_weights"]
    else:
        ckpt = checkpoint_before(save_folder, rb["restored_step"] if rb else record["step"])
    model, _ = load_for_inference(str(ckpt))
    tokenizer = Tokenizer.from_file(str(Path(cfg.tokenizer) / "tokenizer.json"))
    dataset = replay_dataset(cfg, tokenizer, record["epoch"])  # built once: a window can be many batches long
    per_sample: dict[int, float] = {}
    for start in range(0, len(indices), 8):  # scored in pieces of 8 samples
        chunk = indices[start:start + 8]
        per_sample.update(score(model, default_collate([dataset.get_item(i) for i in chunk]), chunk))
    return {"record": record, "checkpoint": str(ckpt), "per_sample_loss": per_sample,
            "samples": describe_samples(dataset, tokenizer, cfg, indices)}


def score(model: torch.nn.Module, batch: dict[str, torch.Tensor], sample_indices: list[int]) -> dict[int, float]:
    """Mean next-token loss of each sample of ``batch`` (its loss-generating tokens)."""
    with torch.no_grad():
        logits_BTV = model(batch["input_ids"], segment_ids_BT=batch.get("segment_ids"), prefix_len_B=batch.get("prefix_len"))
        V = logits_BTV.shape[-1]
        per_token = torch.nn.functional.cross_entropy(
            logits_BTV[:, :-1].reshape(-1, V), batch["labels"][:, 1:].reshape(-1), reduction="none", ignore_index=-100,
        ).view(len(sample_indices), -1)
        counts = (batch["labels"][:, 1:] != -100).sum(dim=1).clamp(min=1)
        return dict(zip(sample_indices, (per_token.sum(dim=1) / counts).tolist(), strict=True))
