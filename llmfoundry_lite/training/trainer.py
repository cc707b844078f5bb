"""Build and run the Composer Trainer from a validated ``TrainConfig``."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import torch
from composer import Trainer
from composer.core import Evaluator
from composer.utils import dist, reproducibility
from tokenizers import Tokenizer

from llmfoundry_lite.callbacks.console import CompactConsoleLogger
from llmfoundry_lite.callbacks.grad_clip import GlobalGradClip
from llmfoundry_lite.callbacks.run_info import RunInfo
from llmfoundry_lite.callbacks.streams import StreamCounter
from llmfoundry_lite.config import save_config
from llmfoundry_lite.models.composer_model import ComposerDecoder
from llmfoundry_lite.objectives import ObjectiveConfig, build_objective
from llmfoundry_lite.shards.manifest import check_shards_manifest, load_shards_manifest
from llmfoundry_lite.tokenizer import load_tokenizer
from llmfoundry_lite.training import parallel
from llmfoundry_lite.training.builders import (
    build_callbacks,
    build_guards,
    build_loggers,
    build_optimizer,
    build_scheduler,
)
from llmfoundry_lite.training.config import LoaderConfig, TrainConfig
from llmfoundry_lite.training.data import build_dataloader, describe_mixture
from llmfoundry_lite.training.shared_fs import check_shared_save_folder
from llmfoundry_lite.training.summary import write_run_summary


def resolve_precision(precision: str) -> str:
    """``auto`` → amp_bf16 on GPU, fp32 on CPU; mixed precision on CPU is refused with the fix."""
    on_gpu = torch.cuda.is_available()
    if precision == "auto":
        return "amp_bf16" if on_gpu else "fp32"
    if precision != "fp32" and not on_gpu:
        raise ValueError(f"precision={precision} needs a GPU (Composer trains fp32 on CPU); pass precision=fp32")
    return precision


def load_run_tokenizer(cfg: TrainConfig) -> Tokenizer:
    """The run's tokenizer, checked against the model's vocabulary and the shards' manifest."""
    if not (Path(cfg.tokenizer) / "tokenizer.json").is_file():
        raise FileNotFoundError(f"tokenizer={cfg.tokenizer!r} has no tokenizer.json; train one first or fix the path")
    tokenizer = load_tokenizer(cfg.tokenizer)
    if tokenizer.get_vocab_size() > cfg.model.vocab_size:
        raise ValueError(f"tokenizer {cfg.tokenizer} has {tokenizer.get_vocab_size()} tokens but "
                         f"model.vocab_size={cfg.model.vocab_size}; set model.vocab_size={tokenizer.get_vocab_size()}")
    check_streams_agree(cfg.train_loader, "train_loader")  # whatever check_manifest says: a mixed batch is wrong
    check_streams_agree(cfg.eval_loader, "eval_loader")
    if cfg.check_manifest:
        check_manifests(cfg)
    return tokenizer


def check_manifests(cfg: TrainConfig) -> None:
    """Refuse shards made with another tokenizer, vocabulary or sequence length."""
    for loader in (cfg.train_loader, cfg.eval_loader):
        for local in loader.stream_dirs().values():
            check_shards_manifest(local, cfg.tokenizer, cfg.model.max_seq_len, cfg.model.vocab_size)


def check_streams_agree(lc: LoaderConfig, key: str) -> None:
    """Every stream of a mixture holds samples of one tokenizer and one sequence length (from the manifests)."""
    if not lc.streams:
        return
    seen: dict[tuple[str, int], str] = {}
    for name, local in lc.stream_dirs().items():
        m = load_shards_manifest(local)
        seen.setdefault((m["tokenizer_sha256"], m["max_seq_len"]), name)
    if len(seen) > 1:
        detail = "; ".join(f"{name}: tokenizer {sha[:12]}…, max_seq_len {n}" for (sha, n), name in seen.items())
        raise ValueError(f"{key}.streams do not share one tokenizer and sequence length ({detail}); "
                         f"shard every source with the same tokenizer (data_prep/shard_stack.py with sources)")


def _loader(cfg: TrainConfig, lc: LoaderConfig, objective_cfg: ObjectiveConfig, tokenizer: Tokenizer,
            batch_size: int) -> torch.utils.data.DataLoader:
    objective = build_objective(objective_cfg, tokenizer, cfg.model.max_seq_len)
    return build_dataloader(lc, objective, batch_size)


def microbatch_size(cfg: TrainConfig, per_device: int) -> int | str:
    value = cfg.device_train_microbatch_size
    if value is None:
        return per_device
    if value == "auto":
        if not torch.cuda.is_available():
            raise ValueError("device_train_microbatch_size=auto needs a GPU; give an integer on CPU")
        return "auto"
    return int(value)


def build_trainer(cfg: TrainConfig) -> Trainer:
    """Everything wired together: model, data, optimizer, schedule, loggers, callbacks, checkpoints.

    How the run is parallelised (loss weighting, mesh, initialisation, checkpoint format) is
    stated in ``training/parallel.py``.
    """
    precision = resolve_precision(cfg.precision)
    parallel.init_process_group(cfg.dist_timeout)  # before the datasets: see parallel.py, "Process group"
    # Within seconds, before anything is built: a node-local save_folder would only fail at the restart.
    shared = check_shared_save_folder(cfg.save_folder, parallel.process_group_device())
    per_device = cfg.device_batch_size(dist.get_world_size())
    microbatch = microbatch_size(cfg, per_device)
    tokenizer = load_run_tokenizer(cfg)
    parallelism = parallel.parallelism_config(cfg.fsdp_config)
    if dist.get_global_rank() == 0:
        print(f"parallelism: {parallel.describe(cfg.fsdp_config, dist.get_world_size(), dist.get_local_world_size())}")
        print(shared)
    # No streaming.clean_stale_shared_memory() here: it unlinks the shared memory of EVERY streaming
    # dataset on the machine, live runs included. Local-only shards never conflict: a SIGKILLed
    # run's leftovers just make the next dataset take the next free prefix.
    reproducibility.seed_all(cfg.seed)  # model init must not depend on what ran before
    model = ComposerDecoder(cfg.model, init_device=parallel.model_init_device(cfg.fsdp_config))
    train_dl = _loader(cfg, cfg.train_loader, cfg.objective, tokenizer, per_device)
    if cfg.train_loader.streams and dist.get_global_rank() == 0:
        print(describe_mixture(train_dl.dataset, list(cfg.train_loader.streams)))
    eval_dl = _loader(cfg, cfg.eval_loader, ObjectiveConfig(), tokenizer, cfg.device_eval_batch_size)
    optimizer = build_optimizer(model, cfg.optimizer)
    callbacks = [RunInfo(cfg.model, cfg.tokenizer), parallel.ShardingReport(),
                 StreamCounter(list(cfg.train_loader.stream_dirs())), *build_callbacks(cfg, record_spikes=not cfg.rollback.enabled),
                 *build_guards(cfg, precision)]
    if cfg.grad_clip_norm > 0:  # last: the health monitor reads the gradients before they are clipped
        callbacks.append(GlobalGradClip(cfg.grad_clip_norm))
    # save_overwrite with autoresume: a SIGKILL during a save leaves a newer, unfinished file that
    # latest-rank0.pt does not point to; the resumed run must be allowed to write over it.
    return Trainer(
        run_name=cfg.run_name, model=model, seed=cfg.seed,
        train_dataloader=parallel.token_data_spec(train_dl),
        eval_dataloader=Evaluator(label="eval", dataloader=parallel.token_data_spec(eval_dl)),
        eval_interval=cfg.eval_interval, eval_subset_num_batches=cfg.eval_subset_num_batches,
        max_duration=cfg.max_duration, optimizers=optimizer, schedulers=build_scheduler(cfg.scheduler),
        step_schedulers_every_batch=True, precision=precision, accumulate_train_batch_on_tokens=True,
        device_train_microbatch_size=microbatch, parallelism_config=parallelism,
        loggers=[CompactConsoleLogger(cfg.loggers.console_interval_batches()), *build_loggers(cfg)],
        callbacks=callbacks, progress_bar=False, log_to_console=False,
        save_folder=cfg.save_folder, save_interval=cfg.save_interval, save_overwrite=cfg.autoresume,
        save_num_checkpoints_to_keep=cfg.save_num_checkpoints_to_keep, autoresume=cfg.autoresume,
        load_path=cfg.load_path, load_weights_only=not cfg.load_training_state,  # see TrainConfig.load_path
        dist_timeout=cfg.dist_timeout, compile_config={} if cfg.compile else None,
    )


def train(cfg: TrainConfig) -> Trainer:
    """Train to ``max_duration`` (resuming if a checkpoint exists); returns the finished Trainer."""
    return fit(build_trainer(cfg), cfg)


def fit(trainer: Trainer, cfg: TrainConfig) -> Trainer:
    """Save the resolved config and tokenizer next to the checkpoints, log the config to every logger
    (W&B config, MLflow params), train, print the closing line."""
    if dist.get_global_rank() == 0:
        save_config(cfg, Path(cfg.save_folder) / "config.yaml")
        tok_copy = Path(cfg.save_folder) / "tokenizer"
        if not tok_copy.exists():
            shutil.copytree(cfg.tokenizer, tok_copy)
    trainer.logger.log_hyperparameters(flat_config(cfg))
    trainer.fit()
    if dist.get_global_rank() == 0:
        print(final_report(write_run_summary(trainer, cfg.save_folder)))
    return trainer


def flat_config(cfg: Any) -> dict[str, Any]:
    """The resolved config as ``{"optimizer.lr": 0.001, ...}`` (lists as text), what trackers take as params."""
    out: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)

    walk(dataclasses.asdict(cfg), "")
    return out


def final_report(summary: dict) -> str:
    """The closing line: the last evaluation against the unigram entropy of the evaluation split."""
    eval_loss, entropy = summary["final_eval_loss"], summary["unigram_entropy"]
    line = (f"final eval loss {eval_loss:.4f} nats/token; unigram entropy of the eval split {entropy:.4f} "
            f"nats/token (best context-free loss); ratio {eval_loss / entropy:.3f}; "
            f"{summary['tokens_trained']:,} tokens in {summary['batches']} batches")
    if summary.get("rollbacks"):
        events = summary["rollbacks"]
        where = ", ".join(f"{e['trigger']} at step {e['step']}" for e in events)
        skipped = sum(e["skipped_samples"] for e in events)
        line += f"\nrollbacks: {len(events)} ({where}); {skipped:,} samples skipped (loss_spikes.jsonl)"
    streams = summary.get("samples_by_stream", {})
    if len(streams) > 1:
        line += "\nsamples by stream: " + ", ".join(f"{name} {n:,}" for name, n in streams.items())
    return line
