"""Config sections → Composer objects: optimizer, scheduler, loggers, callbacks.

One explicit dict per kind, so a YAML ``name:`` leads straight to the code that builds it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from composer.callbacks import LRMonitor, MemoryMonitor, SpeedMonitor
from composer.core import Callback
from composer.loggers import LoggerDestination
from composer.optim import (
    ConstantWithWarmupScheduler,
    CosineAnnealingWithWarmupScheduler,
    LinearWithWarmupScheduler,
)

from llmfoundry_lite.callbacks.activation_health import ActivationHealthMonitor
from llmfoundry_lite.callbacks.fault_injection import FaultInjector
from llmfoundry_lite.callbacks.loss_spike import LossSpikeDetector
from llmfoundry_lite.callbacks.metrics_file import JSONLinesLogger
from llmfoundry_lite.callbacks.numerical_health import NumericalHealthMonitor
from llmfoundry_lite.callbacks.rollback import RollbackGuard
from llmfoundry_lite.callbacks.speed import measure_matmul_flops
from llmfoundry_lite.callbacks.wandb_logger import WandBLogger
from llmfoundry_lite.training.adamw import FusedDecoupledAdamW
from llmfoundry_lite.training.config import OptimizerConfig, SchedulerConfig, TrainConfig
from llmfoundry_lite.training.lion import DecoupledLionW

OPTIMIZERS: dict[str, Callable[[Any, OptimizerConfig], torch.optim.Optimizer]] = {
    "decoupled_adamw": lambda params, c: FusedDecoupledAdamW(
        params, lr=c.lr, betas=tuple(c.betas), eps=c.eps, weight_decay=c.weight_decay),
    "decoupled_lionw": lambda params, c: DecoupledLionW(
        params, lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay),
}

SCHEDULERS: dict[str, Callable[[SchedulerConfig], Any]] = {
    "cosine_with_warmup": lambda c: CosineAnnealingWithWarmupScheduler(t_warmup=c.t_warmup, alpha_f=c.alpha_f),
    "linear_decay_with_warmup": lambda c: LinearWithWarmupScheduler(t_warmup=c.t_warmup, alpha_f=c.alpha_f),
    "constant_with_warmup": lambda c: ConstantWithWarmupScheduler(t_warmup=c.t_warmup),
}


def build_optimizer(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.name](model.parameters(), cfg)


def build_scheduler(cfg: SchedulerConfig) -> Any:
    """The Composer schedule of ``cfg`` (stepped every batch).

    Composer steps the schedule at the end of a batch *before* it advances the clock, so batch b
    (b >= 1) trains at the schedule's value for batch b - 1 and batch 0 at its value for 0: with
    ``t_warmup: 100ba`` the first two batches train at LR 0 and the peak comes at batch 101. A
    one-batch lag, the same in every Composer/llm-foundry run; it matters only for very short runs
    (tests that must train in two steps use three)."""
    return SCHEDULERS[cfg.name](cfg)


def build_loggers(cfg: TrainConfig) -> list[LoggerDestination]:
    """metrics.jsonl and W&B as configured (the console logger is the Trainer's own). W&B runs
    offline unless the config asks for online, so a run never blocks on the network."""
    loggers: list[LoggerDestination] = []
    if cfg.loggers.file:
        loggers.append(JSONLinesLogger(Path(cfg.save_folder) / "metrics.jsonl"))
    wb = cfg.loggers.wandb
    if wb is not None and wb.mode != "disabled":
        os.environ["WANDB_MODE"] = wb.mode
        os.environ.setdefault("WANDB_DIR", cfg.save_folder)
        os.environ.setdefault("WANDB_SILENT", "true")
        Path(cfg.save_folder).mkdir(parents=True, exist_ok=True)
        loggers.append(WandBLogger(project=wb.project, entity=wb.entity, name=cfg.run_name,
                                   init_kwargs={"mode": wb.mode, "dir": cfg.save_folder}))
    if cfg.loggers.mlflow is not None:
        loggers.append(_mlflow(cfg))
    return loggers


def _mlflow(cfg: TrainConfig) -> LoggerDestination:
    from composer.loggers import MLFlowLogger

    ml = cfg.loggers.mlflow
    uri = ml.tracking_uri or f"file:{Path(cfg.save_folder).resolve()}/mlruns"
    if uri.startswith("file:"):
        # MLflow 3 refuses its file store unless told otherwise (it prefers a database); a local,
        # offline store under the run is what a run without a tracking server needs.
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return MLFlowLogger(experiment_name=ml.experiment_name, run_name=cfg.run_name, tracking_uri=uri)


def _speed_monitor(cfg: TrainConfig) -> Callback:
    sm = cfg.callbacks.speed_monitor
    peak = sm.peak_flops
    if peak is None and not torch.cuda.is_available():
        peak = measure_matmul_flops()  # CPU "MFU": against this machine's measured matmul rate
        print(f"speed_monitor: CPU peak for MFU = measured fp32 matmul rate {peak / 1e9:.1f} GFLOP/s")
    return SpeedMonitor(window_size=sm.window_size, gpu_flops_available=peak)


def _loss_spike(cfg: TrainConfig) -> Callback:
    ls = cfg.callbacks.loss_spike
    return LossSpikeDetector(cfg.save_folder, window=ls.window, min_history=ls.min_history,
                             z_threshold=ls.z_threshold, ratio_threshold=ls.ratio_threshold)


def _numerical_health(cfg: TrainConfig) -> Callback:
    nh = cfg.callbacks.numerical_health
    return NumericalHealthMonitor(interval=nh.interval, underflow_warn=nh.underflow_warn, trend_window=nh.trend_window,
                                  skip_warn=nh.skip_warn, skip_window=nh.skip_window)


def _activation_health(cfg: TrainConfig) -> Callback:
    ah = cfg.callbacks.activation_health
    return ActivationHealthMonitor(interval=ah.interval, fp16_margin=ah.fp16_margin, growth_factor=ah.growth_factor,
                                   history=ah.history)


def _humaneval(cfg: TrainConfig) -> Callback:
    if importlib.util.find_spec("llmfoundry_lite.eval.callback") is None:
        raise ValueError("callbacks.humaneval is set but llmfoundry_lite.eval.callback is not available")
    from llmfoundry_lite.eval.callback import HumanEvalCallback

    return HumanEvalCallback(tokenizer=cfg.tokenizer, **dict(cfg.callbacks.humaneval or {}))


CALLBACKS: dict[str, Callable[[TrainConfig], Callback]] = {
    "speed_monitor": _speed_monitor,
    "lr_monitor": lambda cfg: LRMonitor(),
    "memory_monitor": lambda cfg: MemoryMonitor(),
    "loss_spike": _loss_spike,
    "numerical_health": _numerical_health,
    "activation_health": _activation_health,
    "humaneval": _humaneval,
}


def build_callbacks(cfg: TrainConfig, record_spikes: bool = True) -> list[Callback]:
    """Every callback whose section is set (not null / not false); memory_monitor only on GPU.
    ``record_spikes=False`` leaves out the loss-spike recorder: the rollback guard records them itself."""
    out = []
    for name, build in CALLBACKS.items():
        setting = getattr(cfg.callbacks, name)
        if setting is None or setting is False:
            continue
        if name == "memory_monitor" and not torch.cuda.is_available():
            continue
        if name == "loss_spike" and not record_spikes:
            continue
        out.append(build(cfg))
    return out


def build_guards(cfg: TrainConfig, precision: str) -> list[Callback]:
    """The fault-injection drill (if configured) and the rollback guard (if enabled), in that order.

    The trainer puts them after every callback that reads raw gradients and before gradient clipping:
    the guard drops a bad batch's gradients before the clip and the optimizer step see them."""
    out: list[Callback] = []
    fi = cfg.fault_injection
    if fi is not None:
        out.append(FaultInjector(cfg.save_folder, fi.nan_at_batch, fi.spike_at_batch, fi.spike_scale))
    rb = cfg.rollback
    if rb.enabled:
        ls = cfg.callbacks.loss_spike
        spike = None if ls is None else {"window": ls.window, "min_history": ls.min_history,
                                         "z_threshold": ls.z_threshold, "ratio_threshold": ls.ratio_threshold}
        out.append(RollbackGuard(cfg.save_folder, max_rollbacks=rb.max_rollbacks, snapshot_interval=rb.snapshot_interval,
                                 snapshot_device=rb.snapshot_device, lr_scale=rb.lr_scale,
                                 lr_scale_batches=rb.lr_scale_batches, save_restored=rb.save_restored, spike=spike,
                                 streams=list(cfg.train_loader.stream_dirs()), fp16=precision == "amp_fp16"))
    return out
