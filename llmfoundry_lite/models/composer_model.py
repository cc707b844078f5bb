"""Composer wrapper: batches of ``input_ids``/``labels`` (+ ``segment_ids``, optional ``prefix_len``) → loss and metrics."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from composer.metrics.nlp import LanguageCrossEntropy, LanguagePerplexity
from composer.models import ComposerModel

from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.loss import POISON_KEY, lm_loss, poisoned_lm_loss
from llmfoundry_lite.models.transformer import Block, Transformer


def non_pad_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens of a batch that are not padding: segment id 0 marks padding (the objectives emit
    ``segment_ids``); a batch without segment ids holds no padding by contract."""
    if "segment_ids" in batch:
        return int((batch["segment_ids"] != 0).sum())
    return batch["input_ids"].numel()


class ComposerDecoder(ComposerModel):
    """Our ``Transformer`` as a ComposerModel.

    ``flops_per_batch`` lets Composer's SpeedMonitor report FLOP/s and MFU with the formula
    of ``ModelConfig.flops_per_token``. Blocks are the FSDP wrap / activation-checkpoint unit.
    ``init_device="meta"`` builds the decoder's weights without memory (FSDP ranks other than
    0 do this; rank 0's initialised weights are then broadcast into the shards).
    """

    def __init__(self, cfg: ModelConfig, init_device: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        with torch.device(init_device) if init_device else contextlib.nullcontext():
            self.model = Transformer(cfg)
        # No train metrics: they would recompute the loss over the full logits every step;
        # the training loss is logged by Composer anyway (loss/train/total).
        self.train_metrics: dict[str, Any] = {}
        self.eval_metrics = {"LanguageCrossEntropy": LanguageCrossEntropy(), "LanguagePerplexity": LanguagePerplexity()}
        self.model.fsdp_wrap_fn = lambda module: isinstance(module, Block)
        self.model.activation_checkpointing_fn = lambda module: isinstance(module, Block)

    @classmethod
    def around(cls, model: Transformer) -> ComposerDecoder:
        """Wrap an existing decoder (e.g. loaded weights to fine-tune) without building a second one."""
        wrapper = cls(model.cfg, init_device="meta")
        wrapper.model = model
        model.fsdp_wrap_fn = lambda module: isinstance(module, Block)
        model.activation_checkpointing_fn = lambda module: isinstance(module, Block)
        return wrapper

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch["input_ids"], segment_ids_BT=batch.get("segment_ids"), prefix_len_B=batch.get("prefix_len"))  # (B, T, V)

    def loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor], *args: Any, **kwargs: Any) -> torch.Tensor:
        if POISON_KEY in batch:  # the fault-injection drill's poisoned batch (callbacks/fault_injection.py)
            return poisoned_lm_loss(outputs, batch["labels"], batch[POISON_KEY])
        return lm_loss(outputs, batch["labels"])

    def eval_forward(self, batch: dict[str, torch.Tensor], outputs: Any | None = None) -> torch.Tensor:
        return outputs if outputs is not None else self.forward(batch)

    def get_metrics(self, is_train: bool = False) -> dict[str, Any]:
        return self.train_metrics if is_train else self.eval_metrics

    def update_metric(self, batch: dict[str, torch.Tensor], outputs: torch.Tensor, metric: Any) -> None:
        # Shift here as in lm_loss: logits at t score the label at t+1.
        V = outputs.shape[-1]
        metric.update(outputs[:, :-1].reshape(-1, V).float(), batch["labels"][:, 1:].reshape(-1))

    def flops_per_batch(self, batch: dict[str, torch.Tensor]) -> float:
        """Model FLOPs of the batch's non-padding tokens: padding is computed but is not useful
        work, so MFU (like tokens/s, see ``training/parallel.py``) leaves it out.

        Attention is counted over the full T×T square for every token (``flops_per_token``'s
        12·n_layers·d_model·T): masked scores are counted too — neither the causal half nor the
        pairs a document mask (``doc_mask``) or padding rules out are subtracted. The GPU kernels skip
        that work (flash the blocks above the diagonal, FlexAttention every fully masked block; only
        dense-mask SDPA computes it all), so the FLOPs counted exceed the FLOPs computed and the
        logged MFU is an UPPER bound on the hardware's real utilisation. At most the attention share of the counted FLOPs is not
        computed (T=2048: 11–26% for the GPU presets): about half of it for causal rows, more the
        shorter the documents under ``doc_mask``. The convention is PaLM's and llm-foundry's, so the
        MFU compares with theirs."""
        T = batch["input_ids"].shape[1]
        return self.cfg.flops_per_token(T) * non_pad_tokens(batch)
