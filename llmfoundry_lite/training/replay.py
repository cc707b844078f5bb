"""Replay a loss spike: rebuild the exact batch a spike record names and score it per sample."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
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


def rebuild_batch(cfg: TrainConfig, sample_indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
    """The training batch made of these global sample indices, through the run's objective."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(cfg.tokenizer) / "tokenizer.json"))
    objective = build_objective(cfg.objective, tokenizer, cfg.model.max_seq_len)
    lc = cfg.train_loader
    dataset = ObjectiveDataset(objective=objective, shuffle=False, batch_size=1, **dataset_sources(lc, weighted=False))
    dataset._epoch = epoch
    return default_collate([dataset.get_item(i) for i in sample_indices])


def replay_spike(save_folder: str | Path, spike: int = -1) -> dict:
    """Per-sample loss of the spiking batch under the checkpoint preceding the spike."""
    record = read_spikes(save_folder)[spike]
    cfg = load_config(TrainConfig, Path(save_folder) / "config.yaml")
    batch = rebuild_batch(cfg, record["sample_indices"], record["epoch"])
    ckpt = checkpoint_before(save_folder, record["step"])
    model, _ = load_for_inference(str(ckpt))
    with torch.no_grad():
        logits_BTV = model(batch["input_ids"], segment_ids_BT=batch.get("segment_ids"), prefix_len_B=batch.get("prefix_len"))
        V = logits_BTV.shape[-1]
        per_token = torch.nn.functional.cross_entropy(
            logits_BTV[:, :-1].reshape(-1, V), batch["labels"][:, 1:].reshape(-1), reduction="none", ignore_index=-100,
        ).view(len(record["sample_indices"]), -1)
        counts = (batch["labels"][:, 1:] != -100).sum(dim=1).clamp(min=1)
        per_sample = (per_token.sum(dim=1) / counts).tolist()
    return {"record": record, "checkpoint": str(ckpt),
            "per_sample_loss": dict(zip(record["sample_indices"], per_sample, strict=True))}
