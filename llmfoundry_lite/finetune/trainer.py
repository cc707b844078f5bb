"""Build the Composer Trainer of a fine-tuning run: base weights, instruction rows, LoRA or full weights;
with ``objective: dpo`` or ``kto``, preference rows and ``preference.PreferenceDecoder`` instead.

Everything that decides correctness at scale is pretraining's own (``training/parallel.py``): the
loss is the token mean over the global batch's trained tokens (response tokens by default), DDP or
FSDP2 as configured; under FSDP only rank 0 reads the base (``_base``). With LoRA only adapter tensors
are trainable, handed to the optimizer, written to checkpoints and asked of them on resume; the frozen
base is re-read from ``base`` on resume and export, which refuse other weights than the run recorded
(``base.py``: the base is pinned).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from composer import Trainer
from composer.core import Callback, DataSpec, Evaluator
from composer.utils import dist, reproducibility
from torch.utils.data import DataLoader

from llmfoundry_lite.callbacks.console import CompactConsoleLogger
from llmfoundry_lite.callbacks.grad_clip import GlobalGradClip
from llmfoundry_lite.callbacks.run_info import RunInfo
from llmfoundry_lite.callbacks.streams import StreamCounter
from llmfoundry_lite.finetune.base import BasePin, base_chat_template, base_on_meta, check_base_pin, load_base, pin_base
from llmfoundry_lite.finetune.chat import CHAT_TEMPLATE
from llmfoundry_lite.finetune.config import FinetuneConfig
from llmfoundry_lite.finetune.data import FinetuneDataConfig, FinetuneDataset, check_full_batch
from llmfoundry_lite.finetune.fsdp import AdapterCheckpointFSDP2Config
from llmfoundry_lite.finetune.hf_chat import JinjaChat
from llmfoundry_lite.finetune.lora import apply_lora, drop_frozen_weights
from llmfoundry_lite.finetune.preference import (
    PreferenceDecoder,
    attach_reference,
    describe_heldout,
    heldout_preference,
)
from llmfoundry_lite.finetune.preference_data import PreferenceDataset, count_items
from llmfoundry_lite.finetune.preference_data import check_full_batch as check_full_preference_batch
from llmfoundry_lite.models.composer_model import ComposerDecoder
from llmfoundry_lite.models.loss import token_sum_loss
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.training import parallel
from llmfoundry_lite.training.builders import OPTIMIZERS, build_callbacks, build_loggers, build_scheduler
from llmfoundry_lite.training.shared_fs import check_shared_save_folder
from llmfoundry_lite.training.trainer import microbatch_size, resolve_precision

FINETUNE_INFO = "finetune.json"


class FinetuneInfo(Callback):
    """Where the run started, its LoRA settings and its chat template (Jinja), in every checkpoint beside
    ``RunInfo``'s model config and tokenizer: a checkpoint of adapters alone names the base it belongs
    to — the name given, the exact file it resolved to and the hash of its weights (``base.BasePin``) —,
    and an export carries the template the model was tuned on. A LoRA run resumes only onto the same base
    weights (the checkpoint lacks them); the name may differ (``base=<the recorded file>``)."""

    def __init__(self, base: str, pin: BasePin, lora: Any, chat_template: str) -> None:
        self.base, self.pin, self.lora, self.chat_template = str(Path(base).resolve()), pin, lora, chat_template

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base, "base_file": self.pin.file, "base_sha256": self.pin.sha256,
                "lora": dataclasses.asdict(self.lora) if self.lora is not None else None,
                "chat_template": self.chat_template}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        if self.lora is not None:
            check_base_pin(state, self.pin, self.base, "the checkpoint this run resumes",
                           f"Resume with base={state.get('base_file')} if that file still holds those weights, or "
                           f"fine-tune the new base in a new save_folder.")
        settings = ("lora", "chat_template")
        if any(state.get(k) != mine[k] for k in settings):
            raise ValueError(f"checkpoint was fine-tuned with {({k: state.get(k) for k in settings})}, this run has "
                             f"{({k: mine[k] for k in settings})}; resume with the same lora settings and chat template")

    def run_event(self, event: Any, state: Any, logger: Any) -> None:
        return None


def _loader(cfg: FinetuneDataConfig, tokenizer: Any, chat: JinjaChat | None, batch_size: int, shuffle: bool,
            seed: int, train: bool = True, objective: str = "sft") -> DataLoader:
    if objective == "sft":
        dataset, check, collate = FinetuneDataset(cfg, tokenizer, chat), check_full_batch, None
    else:
        dataset = PreferenceDataset(cfg, tokenizer, objective)
        check, collate = check_full_preference_batch, dataset.collate
    if train:  # the partial batch is dropped: an epoch without a full one would loop at step 0 forever
        check(dataset, batch_size, dist.get_world_size())
    sampler = dist.get_sampler(dataset, shuffle=shuffle, drop_last=train, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=train, collate_fn=collate)


def _data_spec(dataloader: DataLoader) -> DataSpec:
    """Instruction rows weigh by trained tokens (``training/parallel.py``), preference items by items."""
    if isinstance(dataloader.dataset, PreferenceDataset):
        return DataSpec(dataloader, get_num_tokens_in_batch=count_items)
    return parallel.token_data_spec(dataloader)


def _describe(name: str, dataset: FinetuneDataset | PreferenceDataset) -> str:
    if isinstance(dataset, PreferenceDataset):
        return dataset.describe(name)
    s = dataset.summary()
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(s["dropped_by_reason"].items())) or "none"
    return (f"{name}: {s['rows_read']:,} rows -> {s['examples']:,} examples in {s['packed_rows']:,} rows of "
            f"{dataset.max_seq_len} tokens; trained tokens {s['trained_tokens']:,}, prompt tokens "
            f"{s['prompt_tokens']:,}, padding {s['padding_tokens']:,}; dropped: {dropped}")


def _base(cfg: FinetuneConfig) -> tuple[Transformer, Any, BasePin]:
    """The base decoder, its tokenizer and its pin. Under FSDP only rank 0 reads the weights; the other ranks
    build the decoder on the meta device and Composer's ``sync_module_states`` sends them rank 0's weights
    (``training/parallel.py``, Initialisation), so a node holds one fp32 base, not one per rank. Rank 0
    hashes the weights it read and tells every rank (each checks the pin on resume)."""
    if parallel.model_init_device(cfg.fsdp_config) == "meta":
        transformer, tokenizer = base_on_meta(cfg.base)
    else:
        transformer, tokenizer = load_base(cfg.base)
    pin = [pin_base(cfg.base, transformer) if dist.get_global_rank() == 0 else None]
    dist.broadcast_object_list(pin, src=0)
    return transformer, tokenizer, pin[0]


def _parallelism(cfg: FinetuneConfig) -> dict[str, Any] | None:
    """Pretraining's ``parallelism_config``; with LoRA, sharded checkpoints are read adapters only (the frozen
    base is neither saved nor asked of a checkpoint on resume: it comes from ``base``)."""
    config = parallel.parallelism_config(cfg.fsdp_config)
    if _adapters_only_dcp(cfg):
        config["fsdp"] = AdapterCheckpointFSDP2Config.of(config["fsdp"])
    return config


def _adapters_only_dcp(cfg: FinetuneConfig) -> bool:
    """LoRA with sharded (DCP) checkpoints: they hold the adapters alone and are read back so."""
    return cfg.lora is not None and cfg.fsdp_config is not None and cfg.fsdp_config.state_dict_type == "sharded"


def build_finetune_trainer(cfg: FinetuneConfig) -> Trainer:
    """Base model (+ LoRA), instruction loaders, optimizer over the trainable weights, Composer Trainer."""
    precision = resolve_precision(cfg.precision)
    parallel.init_process_group(cfg.dist_timeout)  # before the datasets: see training/parallel.py
    # Before the base is read: a node-local save_folder fails here in seconds (training/shared_fs.py).
    shared = check_shared_save_folder(cfg.save_folder, parallel.process_group_device())
    per_device = cfg.device_batch_size(dist.get_world_size())
    reproducibility.seed_all(cfg.seed)
    transformer, tokenizer, pin = _base(cfg)
    model_cfg = transformer.cfg
    for loader in (cfg.train_loader, cfg.eval_loader):
        if loader is not None and loader.max_seq_len > model_cfg.max_seq_len:
            raise ValueError(f"max_seq_len {loader.max_seq_len} of the data exceeds the base model's "
                             f"{model_cfg.max_seq_len}; lower train_loader.max_seq_len / eval_loader.max_seq_len")
    if cfg.train_loader.packing and not model_cfg.doc_mask:
        # Packed rows need per-example attention; the flag changes the mask only, not the weights.
        model_cfg = dataclasses.replace(model_cfg, doc_mask=True)
        transformer.cfg = model_cfg
    model = (ComposerDecoder.around(transformer) if cfg.objective == "sft"
             else PreferenceDecoder.wrap(transformer, cfg.objective, cfg.preference))
    trainable, total = (apply_lora(transformer, cfg.lora) if cfg.lora is not None
                        else (sum(p.numel() for p in transformer.parameters()),) * 2)
    # The base's tokenizer beside the checkpoints (RunInfo stores it in them). Every rank writes the same
    # bytes and renames them into place: no rank reads a half-written file, and no barrier is needed.
    tok_dir = Path(cfg.save_folder) / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    tmp = tok_dir / f"tokenizer.json.{dist.get_global_rank()}.tmp"
    tokenizer.save(str(tmp))
    os.replace(tmp, tok_dir / "tokenizer.json")
    chat = base_chat_template(cfg.base)  # an HF base's own template, else ours (chat.py)
    train_dl = _loader(cfg.train_loader, tokenizer, chat, per_device, shuffle=cfg.train_loader.shuffle, seed=cfg.seed,
                       objective=cfg.objective)
    eval_dl = (_loader(cfg.eval_loader, tokenizer, chat, cfg.device_eval_batch_size, shuffle=False, seed=cfg.seed,
                       train=False, objective=cfg.objective)
               if cfg.eval_loader is not None else None)
    reference = []
    if cfg.objective != "sft":  # the base's log-probs, once, before any step (preference.py)
        datasets = {"train_loader": train_dl.dataset, **({"eval_loader": eval_dl.dataset} if eval_dl else {})}
        reference = attach_reference(transformer, datasets, cfg, pin.sha256, precision, cfg.device_eval_batch_size,
                                     all_ranks=parallel.model_init_device(cfg.fsdp_config) != "meta")
    if dist.get_global_rank() == 0:
        print(f"parallelism: {parallel.describe(cfg.fsdp_config, dist.get_world_size(), dist.get_local_world_size())}")
        print(shared)
        kind = f"LoRA r={cfg.lora.r} on {', '.join(cfg.lora.target_modules)}" if cfg.lora else "full fine-tuning"
        print(f"finetune: {kind}; {trainable:,} of {total:,} parameters train ({trainable / total:.2%})")
        print(_describe("train_loader", train_dl.dataset))
        if eval_dl is not None:
            print(_describe("eval_loader", eval_dl.dataset))
        for line in reference:
            print(line)
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS[cfg.optimizer.name](params, cfg.optimizer)
    callbacks = [RunInfo(model_cfg, tok_dir), FinetuneInfo(cfg.base, pin, cfg.lora, chat.template if chat else CHAT_TEMPLATE), parallel.ShardingReport(),
                 StreamCounter(["finetune"]),
                 *build_callbacks(cfg)]
    if cfg.grad_clip_norm > 0:
        callbacks.append(GlobalGradClip(cfg.grad_clip_norm))
    evaluator = Evaluator(label="eval", dataloader=_data_spec(eval_dl)) if eval_dl is not None else None
    return Trainer(
        run_name=cfg.run_name, model=model, seed=cfg.seed,
        train_dataloader=_data_spec(train_dl), eval_dataloader=evaluator,
        eval_interval=cfg.eval_interval, eval_subset_num_batches=cfg.eval_subset_num_batches,
        max_duration=cfg.max_duration, optimizers=optimizer, schedulers=build_scheduler(cfg.scheduler),
        step_schedulers_every_batch=True, precision=precision, accumulate_train_batch_on_tokens=True,
        device_train_microbatch_size=microbatch_size(cfg, per_device),
        parallelism_config=_parallelism(cfg),
        loggers=[CompactConsoleLogger(cfg.loggers.console_interval_batches()), *build_loggers(cfg)],
        callbacks=callbacks, progress_bar=False, log_to_console=False,
        save_folder=cfg.save_folder, save_interval=cfg.save_interval, save_overwrite=cfg.autoresume,
        save_num_checkpoints_to_keep=cfg.save_num_checkpoints_to_keep, autoresume=cfg.autoresume,
        save_ignore_keys=drop_frozen_weights if cfg.lora is not None else None,
        # A sharded LoRA checkpoint restores the adapters alone (fsdp.AdaptersOnlyLoadPlanner, which still
        # fails on a missing adapter); the model load after it must not ask for the frozen base too.
        load_strict_model_weights=not _adapters_only_dcp(cfg),
        dist_timeout=cfg.dist_timeout,
    )


def response_loss(trainer: Trainer) -> float | None:
    """Mean loss per trained (response) token over the eval split with the trainer's current weights."""
    if not trainer.state.evaluators:
        return None
    model = trainer.state.model
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in trainer.state.evaluators[0].dataloader.dataloader:
            batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
            loss_sum, tokens = token_sum_loss(model(batch), batch["labels"])  # the training loss's own shift
            total += float(loss_sum)
            count += int(tokens)
    model.train(was_training)
    if dist.get_world_size() > 1:
        # On the trainer's device: on a GPU the process group is NCCL, which rejects host tensors.
        # float64: a float32 sum of many token losses would round, and so would a count above 2**24.
        t = trainer.state.device.tensor_to_device(torch.tensor([total, float(count)], dtype=torch.float64))
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


def finetune(trainer: Trainer, cfg: FinetuneConfig) -> dict:
    """Measure the held-out response loss (preference objectives: the held-out preference loss and
    accuracies), train, measure again; write and return train_summary.json."""
    from llmfoundry_lite.config import save_config
    from llmfoundry_lite.training.trainer import flat_config

    if dist.get_global_rank() == 0:
        save_config(cfg, Path(cfg.save_folder) / "config.yaml")
    trainer.logger.log_hyperparameters(flat_config(cfg))
    if cfg.objective != "sft":
        return _finetune_preference(trainer, cfg)
    before = response_loss(trainer) if int(trainer.state.timestamp.batch) == 0 else None
    trainer.fit()
    after = response_loss(trainer)
    summary = {**_run_summary(trainer, cfg),
               "heldout_response_loss_before": before, "heldout_response_loss_after": after}
    if dist.get_global_rank() == 0:
        (Path(cfg.save_folder) / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if before is not None and after is not None:
            print(f"held-out response loss {before:.4f} -> {after:.4f} nats/token")
    return summary


def _run_summary(trainer: Trainer, cfg: FinetuneConfig) -> dict:
    ts = trainer.state.timestamp
    counter = next(c for c in trainer.state.callbacks if isinstance(c, StreamCounter))
    return {"base": cfg.base, "objective": cfg.objective, "lora": dataclasses.asdict(cfg.lora) if cfg.lora else None,
            "batches": int(ts.batch), "samples_trained": int(ts.sample), "tokens_trained": int(ts.token),
            "samples_by_stream": counter.samples_by_stream()}


def _finetune_preference(trainer: Trainer, cfg: FinetuneConfig) -> dict:
    """``finetune`` for dpo / kto: the held-out preference terms (``preference.heldout_preference``)."""
    before = heldout_preference(trainer, cfg) if int(trainer.state.timestamp.batch) == 0 else None
    trainer.fit()
    after = heldout_preference(trainer, cfg)
    summary = {**_run_summary(trainer, cfg), "preference": dataclasses.asdict(cfg.preference),
               "heldout_before": before, "heldout_after": after}
    if dist.get_global_rank() == 0:
        (Path(cfg.save_folder) / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if after is not None:
            print(describe_heldout(before, after))
    return summary
