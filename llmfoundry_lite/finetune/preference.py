"""Preference tuning: DPO (Rafailov et al. 2023) and KTO (Ethayarajh et al. 2024) on our decoder, full or LoRA.

**The losses** are pure functions of per-sequence log-probabilities, summed over the continuation's
tokens (``sequence_logps``): the policy's, and the reference model's (the base, frozen).

- DPO, paper eq. 7: ``-log σ(β[(π_c - r_c) - (π_r - r_r)])`` per pair, π/r the policy's / reference's
  log-prob of the chosen (c) and rejected (r) continuation. Reported: the implicit rewards β(π - r) of
  both, their margin, the *reward accuracy* (the fraction of pairs whose policy margin π_c - π_r exceeds
  the reference margin r_c - r_r; a tie counts one half, so the untrained policy scores exactly 0.5) and
  the *choice accuracy* (the fraction the policy itself ranks right, π_c > π_r; ties one half).
- KTO, paper eq. 8: ``λ_y - v(x, y)`` per completion with v = λ_D σ(β(r - z0)) when desirable and
  λ_U σ(β(z0 - r)) when not, r = π - ref. The reference point z0 = KL(π(y'|x) ‖ ref(y'|x)) is estimated
  as the paper does (§4.1): the mean log-ratio π - ref of *mismatched* pairs — each prompt x with another
  row's completion y' (``preference_data.py`` fixes which) — over the microbatch, clamped at 0 and not
  back-propagated. Reported: the rewards β·r, z0 (``kl``) and the reward accuracy (the fraction on the
  right side of z0; ties one half).

**The reference is computed once.** Before training, one pass of the frozen base over the train and
eval items (``attach_reference``) stores both sequences' log-probs in the datasets, so a training step
runs the policy alone — never two models. With LoRA the base is the policy with its adapters disabled;
with full fine-tuning it is the policy before its first step, so no frozen copy is kept at all. Each
rank scores its share of the items (under FSDP, rank 0 scores them all: the other ranks hold no weights
yet) and the results are summed over ranks. With ``preference.reference_cache`` they are also written
to ``<cache>/<key>.pt``, the key a sha256 of the base weights (``base.BasePin``), the precision and every
item's tokens, so a rerun or a resume reads them instead; the policy forwards under the same precision.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from composer.core.precision import get_precision_context
from composer.utils import dist
from torchmetrics import MeanMetric

from llmfoundry_lite.finetune.config import FinetuneConfig, PreferenceConfig
from llmfoundry_lite.finetune.preference_data import PreferenceDataset
from llmfoundry_lite.models.composer_model import ComposerDecoder
from llmfoundry_lite.models.loss import IGNORE_INDEX, shifted_labels
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.training import parallel

EVAL_METRICS = {
    "dpo": {"PreferenceLoss": "loss", "RewardAccuracy": "reward_accuracy", "RewardMargin": "reward_margin",
            "ChoiceAccuracy": "choice_accuracy"},
    "kto": {"PreferenceLoss": "loss", "RewardAccuracy": "reward_accuracy", "KL": "kl"},
}
"""Held-out metrics (``metrics/eval/<name>``) of each objective: name -> term of ``preference_terms``."""


def sequence_logps(logits_BTV: torch.Tensor, labels_BT: torch.Tensor) -> torch.Tensor:
    """(B,) float32: the log-probability of each row's labelled tokens, summed — the shift of
    ``models/loss.py`` (position t scores ``labels[t + 1]``)."""
    B, T, V = logits_BTV.shape
    target = shifted_labels(labels_BT).reshape(-1)
    token_logps = -F.cross_entropy(logits_BTV.reshape(-1, V).float(), target, ignore_index=IGNORE_INDEX,
                                   reduction="none")  # 0 where ignored
    return token_logps.view(B, T).sum(-1)


def _beats(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 where a > b, 1/2 where equal, 0 below."""
    return (a > b).float() + 0.5 * (a == b).float()


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """Per-pair DPO loss (``loss``, differentiable) and detached metrics, each (B,); see the module docstring."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen - rejected)
    chosen, rejected = chosen.detach(), rejected.detach()
    return {"loss": loss, "chosen_reward": chosen, "rejected_reward": rejected, "reward_margin": chosen - rejected,
            "reward_accuracy": _beats(chosen, rejected),
            "choice_accuracy": _beats(policy_chosen.detach(), policy_rejected.detach())}


def kto_loss(policy: torch.Tensor, ref: torch.Tensor, desirable: torch.Tensor, kl_policy: torch.Tensor,
             kl_ref: torch.Tensor, beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-completion KTO loss (``loss``) and detached metrics, each (B,). ``kl_policy`` / ``kl_ref``: the
    log-probs of the mismatched pairs, whose mean log-ratio clamped at 0 is the reference point z0."""
    z0 = (kl_policy - kl_ref).mean().clamp(min=0).detach()
    logratio = policy - ref
    weight = torch.where(desirable, desirable_weight, undesirable_weight)
    value = torch.where(desirable, torch.sigmoid(beta * (logratio - z0)), torch.sigmoid(beta * (z0 - logratio)))
    logratio = logratio.detach()
    return {"loss": weight * (1 - value), "reward": beta * logratio, "kl": z0.expand_as(logratio),
            "reward_accuracy": torch.where(desirable, _beats(logratio, z0), _beats(z0, logratio))}


def preference_terms(objective: str, logps_B2: torch.Tensor, batch: dict[str, torch.Tensor],
                     cfg: PreferenceConfig) -> dict[str, torch.Tensor]:
    """The loss and metrics of a batch from the policy's log-probs (B, 2) and the batch's reference ones."""
    ref = batch["ref_logps"].to(logps_B2.dtype)
    if objective == "dpo":
        return dpo_loss(logps_B2[:, 0], logps_B2[:, 1], ref[:, 0], ref[:, 1], cfg.beta)
    return kto_loss(logps_B2[:, 0], ref[:, 0], batch["desirable"].bool(), logps_B2[:, 1], ref[:, 1], cfg.beta,
                    cfg.desirable_weight, cfg.undesirable_weight)


class TermMean(MeanMetric):
    """The mean of one ``preference_terms`` term over the items seen (synchronised over ranks)."""

    def __init__(self, term: str) -> None:
        super().__init__()
        self.term = term


class PreferenceDecoder(ComposerDecoder):
    """Our decoder as a ComposerModel whose batches are preference items (``preference_data.py``):
    ``input_ids``/``labels`` (B, 2, T) and ``ref_logps`` (B, 2). The forward returns the policy's
    log-probs (B, 2); the loss is the objective's mean over the items, and ``loss/train/<term>`` logs
    each metric of ``preference_terms`` (Composer averages them over microbatches and ranks by items)."""

    objective: str
    preference: PreferenceConfig

    @classmethod
    def wrap(cls, model: Transformer, objective: str, preference: PreferenceConfig) -> PreferenceDecoder:
        wrapper = cls.around(model)
        wrapper.objective, wrapper.preference = objective, preference
        wrapper.eval_metrics = {name: TermMean(term) for name, term in EVAL_METRICS[objective].items()}
        return wrapper

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, labels = batch["input_ids"], batch["labels"]  # (B, 2, T)
        B, _, T = ids.shape
        if self.objective == "dpo":  # chosen and rejected in one forward: (2B, T), item-major
            return sequence_logps(self.model(ids.reshape(2 * B, T)), labels.reshape(2 * B, T)).view(B, 2)
        main = sequence_logps(self.model(ids[:, 0]), labels[:, 0])
        with torch.no_grad():  # the mismatched pairs only estimate z0, which is not back-propagated
            mismatched = sequence_logps(self.model(ids[:, 1]), labels[:, 1])
        return torch.stack([main, mismatched], dim=1)

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor], *args: Any, **kwargs: Any) -> dict:
        terms = preference_terms(self.objective, outputs, batch, self.preference)
        return {"total" if k == "loss" else k: v.mean() for k, v in terms.items()}

    def update_metric(self, batch: dict[str, torch.Tensor], outputs: torch.Tensor, metric: Any) -> None:
        metric.update(preference_terms(self.objective, outputs, batch, self.preference)[metric.term])

    def flops_per_batch(self, batch: dict[str, torch.Tensor]) -> float:
        """As ``ComposerDecoder.flops_per_batch`` over both sequences; KTO's mismatched sequence is a
        forward only, a third of the forward + backward that ``flops_per_token`` counts."""
        tokens = (batch["segment_ids"] != 0).sum(dim=-1).sum(dim=0).float()  # (2,): per sequence slot
        per_token = self.cfg.flops_per_token(batch["input_ids"].shape[-1])
        return per_token * float(tokens.sum() if self.objective == "dpo" else tokens[0] + tokens[1] / 3)


@contextlib.contextmanager
def adapters_disabled(model: torch.nn.Module) -> Iterator[None]:
    """``model`` without its LoRA adapters (peft's switch, per layer): the base. No adapters: ``model`` itself."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def reference_logps(transformer: Transformer, dataset: PreferenceDataset, batch_size: int, precision: str,
                    all_ranks: bool = True) -> torch.Tensor:
    """(N, 2) float32: both sequences' log-probs of every item under the base (``transformer`` in eval mode,
    adapters disabled, under ``precision``), each rank scoring its share (rank 0 all, unless ``all_ranks``),
    summed over ranks. The weights are moved to the run's device for the pass and back after it."""
    rank, world = dist.get_global_rank(), dist.get_world_size()
    mine = list(range(rank, len(dataset), world)) if all_ranks else list(range(len(dataset)) if rank == 0 else [])
    device = parallel.process_group_device()
    out = torch.zeros(len(dataset), 2, dtype=torch.float64, device=device)
    if mine:
        home, was_training = next(transformer.parameters()).device, transformer.training
        transformer.eval().to(device)
        with torch.no_grad(), adapters_disabled(transformer), get_precision_context(precision):
            for i in range(0, len(mine), batch_size):
                chunk = mine[i : i + batch_size]
                batch = dataset.collate([dataset.tensors(j) for j in chunk])
                ids, labels = batch["input_ids"].to(device), batch["labels"].to(device)  # (B, 2, T)
                B, _, T = ids.shape
                logps = sequence_logps(transformer(ids.reshape(2 * B, T)), labels.reshape(2 * B, T))
                out[torch.tensor(chunk, device=device)] = logps.view(B, 2).double()
        transformer.train(was_training).to(home)
    if world > 1:
        dist.all_reduce(out)  # every item was scored by exactly one rank
    return out.float().cpu()


def reference_key(dataset: PreferenceDataset, base_sha256: str, precision: str) -> str:
    """What the reference log-probs depend on: the base weights, the precision, every item's tokens."""
    h = hashlib.sha256(f"{dataset.objective}|{base_sha256}|{precision}|".encode())
    h.update(dataset.token_digest())
    return h.hexdigest()


def attach_reference(transformer: Transformer, datasets: dict[str, PreferenceDataset], cfg: FinetuneConfig,
                     base_sha256: str, precision: str, batch_size: int, all_ranks: bool = True) -> list[str]:
    """Set ``dataset.reference`` of every dataset (by loader name): read from ``preference.reference_cache``
    when a file with its key is there, else computed (``reference_logps``) and written there. Returns a
    line per dataset for the run log."""
    lines = []
    for name, dataset in datasets.items():
        key = reference_key(dataset, base_sha256, precision)
        path = Path(cfg.preference.reference_cache) / f"{key}.pt" if cfg.preference.reference_cache else None
        cached = [None]
        if dist.get_global_rank() == 0 and path is not None and path.is_file():
            cached = [torch.load(path, map_location="cpu", weights_only=True)]
        dist.broadcast_object_list(cached, src=0)  # rank 0 decides, so every rank takes the same path
        if cached[0] is not None and cached[0].shape == (len(dataset), 2):
            dataset.reference = cached[0]
            lines.append(f"{name}: reference log-probs of {len(dataset):,} items read from {path}")
            continue
        start = time.monotonic()
        dataset.reference = reference_logps(transformer, dataset, batch_size, precision, all_ranks)
        lines.append(f"{name}: reference log-probs of {len(dataset):,} items computed in one pass of the base "
                     f"({time.monotonic() - start:.1f}s)" + (f", cached in {path}" if path else ""))
        if path is not None and dist.get_global_rank() == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".pt.tmp")
            torch.save(dataset.reference, tmp)
            tmp.replace(path)  # a reader never sees half a file
    return lines


def heldout_preference(trainer: Any, cfg: FinetuneConfig) -> dict[str, float] | None:
    """The mean of every ``preference_terms`` term over the eval items with the trainer's current weights
    (eval mode, the run's precision), over all ranks; None without an eval loader."""
    if not trainer.state.evaluators:
        return None
    model = trainer.state.model
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    items = 0
    with torch.no_grad(), get_precision_context(trainer.state.precision):
        for batch in trainer.state.evaluators[0].dataloader.dataloader:
            batch = {k: v.to(device) for k, v in batch.items()}
            for k, v in preference_terms(cfg.objective, model(batch), batch, cfg.preference).items():
                sums[k] = sums.get(k, 0.0) + float(v.double().sum())
            items += batch["input_ids"].shape[0]
    model.train(was_training)
    keys = sorted(sums)
    if dist.get_world_size() > 1:
        t = trainer.state.device.tensor_to_device(torch.tensor([items, *(sums[k] for k in keys)], dtype=torch.float64))
        dist.all_reduce(t)
        items, sums = int(t[0]), {k: float(v) for k, v in zip(keys, t[1:].tolist(), strict=True)}
    return {k: sums[k] / max(items, 1) for k in keys}


def describe_heldout(before: dict[str, float] | None, after: dict[str, float]) -> str:
    """One line: the held-out loss and accuracies after training, and before it when measured."""
    keys = [k for k in ("loss", "reward_accuracy", "choice_accuracy", "reward_margin", "kl") if k in after]
    if before is None:
        return "held-out " + ", ".join(f"{k} {after[k]:.4f}" for k in keys)
    return "held-out " + ", ".join(f"{k} {before[k]:.4f} -> {after[k]:.4f}" for k in keys)
