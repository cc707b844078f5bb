"""How training is parallelised — the one place that says it.

**Loss reduction.** The objective is the mean cross-entropy over every *loss-generating* token
of the global batch (labels != -100 after the shift; ``models/loss.py``), whatever the mix of
next-token, FIM and UL2 samples and however the batch is cut. Each microbatch's loss is the
mean over its own loss tokens; Composer (``accumulate_train_batch_on_tokens=True``) multiplies
it by ``microbatch_tokens / (global_tokens / world_size)`` before backward, where
``global_tokens`` is all-reduced over ranks, and DDP's all-reduce / FSDP's reduce-scatter then
average over ranks. The product is the global token mean: a UL2 sample with 200 target tokens
weighs 200 tokens, not one sample, and neither ``device_train_microbatch_size`` nor the number
of ranks changes the objective. The logged ``loss/train/total`` is the same token mean.

**Token counts.** ``tokens`` in Composer's clock (``tok`` durations, ``throughput/tokens_per_sec``)
count non-padding tokens; MFU counts the model FLOPs of non-padding tokens
(``ComposerDecoder.flops_per_batch``). Padding is computed but never reported as work.

**Sharding.** ``fsdp_config: null`` is DDP. Otherwise torch's FSDP2 (``fully_shard``) through
Composer's ``FSDP2Config`` — the same code on GPU (NCCL) and CPU (gloo). Each ``Block`` is one
FSDP unit; the root holds the embedding, final norm and head (tied weights stay together).
FULL_SHARD reshards parameters after forward; SHARD_GRAD_OP keeps them gathered until backward
(``reshard_after_forward=False``); HYBRID_SHARD shards inside groups of ``world / replicate``
ranks and replicates across ``replicate`` groups on a 2-D (replicate, shard) mesh
(replicate defaults to the number of nodes); NO_SHARD is the ``(world, 1)`` mesh. Composer builds
the mesh from the degrees ``MeshFSDP2Config`` gives it.

**Process group.** ``init_process_group`` starts the default group (NCCL on GPU, gloo on CPU)
before any dataset is built, with ``dist_timeout``. Otherwise every ``StreamingDataset`` (train,
eval) would start and tear down a group of its own on the same ``MASTER_PORT`` before Composer's,
and a rank that reaches the store late connects to one rank 0 is closing ("failed to recv, got
0 bytes") — a race that more ranks make more likely. Composer's Trainer then reuses the group.

**Initialisation.** Under FSDP with several ranks only rank 0 materialises the full model;
the others build it on the meta device and receive rank 0's weights shard by shard (Composer's
``sync_module_states``), so host memory per node is one model, not one per GPU, and the
initial weights equal a single-process run with the same seed.

**Checkpoints.** ``fsdp_config.state_dict_type``: ``full`` writes ``ep<E>-ba<B>-rank0.pt`` (rank 0
gathers everything), ``sharded`` writes a torch distributed-checkpoint directory ``ep<E>-ba<B>/``
(one file per rank, no gather). ``latest-rank0.pt`` links to the newest; autoresume follows it.
``scripts/export_hf.py`` and ``scripts/convert_checkpoint.py`` read both formats offline.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from composer.core import Callback, DataSpec, State
from composer.loggers import Logger
from composer.utils import dist, get_device
from composer.utils.parallelism import FSDP2Config
from torch.distributed.tensor import DTensor

from llmfoundry_lite.models.composer_model import non_pad_tokens
from llmfoundry_lite.models.loss import loss_token_count
from llmfoundry_lite.training.gloo_hsdp import enable_gloo_hsdp
from llmfoundry_lite.training.sections import FSDPConfig


def init_process_group(timeout_s: float) -> None:
    """The default process group for this run's device, once, before any dataset or model is built."""
    dist.initialize_dist(get_device(None), timeout=timeout_s)


def process_group_device() -> torch.device:
    """Where tensors for this run's collectives live before the Trainer exists: the current CUDA device
    (Composer's ``DeviceGPU`` selected it in ``init_process_group``; NCCL takes nothing else), else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def count_tokens(batch: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Composer's token counts of a (micro)batch: ``total`` (non-padding, for the clock and
    throughput) and ``loss_generating`` (the weight of this batch's mean loss)."""
    return {"total": non_pad_tokens(dict(batch)), "loss_generating": int(loss_token_count(batch["labels"]))}


def token_data_spec(dataloader: Any) -> DataSpec:
    """The dataloader wrapped so Composer counts tokens as described in this module's docstring."""
    return DataSpec(dataloader, get_num_tokens_in_batch=count_tokens)


def replicate_degree(cfg: FSDPConfig, world_size: int, local_world_size: int) -> int:
    """Replica groups of the data-parallel mesh (1 = plain FSDP); errors name the fix."""
    if cfg.sharding_strategy in ("FULL_SHARD", "SHARD_GRAD_OP"):
        if cfg.data_parallel_replicate_degree not in (None, 1):
            raise ValueError(f"fsdp_config.data_parallel_replicate_degree={cfg.data_parallel_replicate_degree} "
                             f"needs sharding_strategy=HYBRID_SHARD (got {cfg.sharding_strategy})")
        return 1
    if cfg.sharding_strategy == "NO_SHARD":
        return world_size
    replicate = cfg.data_parallel_replicate_degree or max(world_size // max(local_world_size, 1), 1)
    if world_size % replicate:
        raise ValueError(f"HYBRID_SHARD: data_parallel_replicate_degree={replicate} does not divide the "
                         f"{world_size} ranks; use a divisor of {world_size}")
    return replicate


@dataclass
class MeshFSDP2Config(FSDP2Config):
    """Composer's FSDP2Config with the data-parallel mesh degrees it actually reads.

    Composer 0.32.1's ``State`` builds the mesh from ``data_parallel_replicate_degree`` and
    ``data_parallel_shard_degree`` and *overwrites* ``device_mesh`` with it; on FSDP2Config those
    are fixed properties (None, -1), so any HYBRID_SHARD mesh was silently replaced by a 1-D
    FULL_SHARD mesh. Here they return our degrees, so Composer builds the
    ``(data_parallel_replicate, data_parallel_shard)`` mesh and fully_shard gets it (HSDP).
    """

    replicate: int = 1
    """Replica groups; 1 = a 1-D fully sharded mesh over every rank."""

    @property
    def data_parallel_replicate_degree(self) -> int | None:
        return self.replicate if self.replicate > 1 else None

    @property
    def data_parallel_shard_degree(self) -> int:
        return -1  # the rest of the world: world_size / replicate


def fsdp2_config(cfg: FSDPConfig, world_size: int, local_world_size: int) -> MeshFSDP2Config:
    """Our ``fsdp_config:`` as Composer's FSDP2Config, every field stated."""
    warnings.filterwarnings("ignore", message="FSDP2 Config/APIs are experimental")  # the path is tested here
    return MeshFSDP2Config(
        replicate=replicate_degree(cfg, world_size, local_world_size),
        reshard_after_forward=cfg.sharding_strategy != "SHARD_GRAD_OP",
        activation_checkpointing=cfg.activation_checkpointing,
        activation_cpu_offload=cfg.activation_cpu_offload,
        state_dict_type=cfg.state_dict_type,
        mixed_precision=cfg.composer_mixed_precision(),  # parameter dtype + fsdp_config.reduce_dtype
    )


def describe(cfg: FSDPConfig | None, world_size: int, local_world_size: int) -> str:
    """One line for the run's header: the strategy and the mesh it trains on."""
    if cfg is None:
        return f"DDP over {world_size} rank(s)" if world_size > 1 else "single process"
    replicate = replicate_degree(cfg, world_size, local_world_size)
    return (f"FSDP2 {cfg.sharding_strategy}: mesh (replicate {replicate} x shard {world_size // replicate}), "
            f"{cfg.state_dict_type} checkpoints")


def parallelism_config(cfg: FSDPConfig | None) -> dict[str, MeshFSDP2Config] | None:
    """Composer's ``parallelism_config`` for this run (None = DDP / single process)."""
    if cfg is None:
        return None
    if not torch.cuda.is_available():
        enable_gloo_hsdp()  # HYBRID_SHARD's replicate-group averaging on CPU; NCCL needs nothing
    os.environ["FSDP_VERSION"] = "2"  # Composer reads it too; FSDP1 hard-codes CUDA devices
    return {"fsdp": fsdp2_config(cfg, dist.get_world_size(), dist.get_local_world_size())}


def model_init_device(cfg: FSDPConfig | None) -> str | None:
    """``meta`` on FSDP ranks other than 0 (they receive rank 0's weights), else None (materialise)."""
    if cfg is not None and dist.get_world_size() > 1 and dist.get_global_rank() != 0:
        return "meta"
    return None


def aliased_parameter_names(model: torch.nn.Module) -> int:
    """Parameter names that point at a tensor another name already holds (a tied head counts 1).
    Sharding, meta-device initialisation or a checkpoint load that broke a tie shows as fewer."""
    return len(list(model.named_parameters(remove_duplicate=False))) - len(list(model.named_parameters()))


class ShardingReport(Callback):
    """At fit start, logs what this rank really holds, so a run cannot silently train unsharded:
    ``parallel/local_param_fraction`` (local parameter elements / full model), the mesh shape, and
    ``parallel/tied_params`` (``aliased_parameter_names``, the fewest on any rank: ranks other than 0
    built their model on meta, so a tie lost there would not show on rank 0, which logs)."""

    def fit_start(self, state: State, logger: Logger) -> None:
        # On the trainer's device: on a GPU the process group is NCCL, which rejects host tensors.
        tied = state.device.tensor_to_device(torch.tensor([aliased_parameter_names(state.model)]))
        dist.all_reduce(tied, reduce_operation="MIN")
        params = list(state.model.parameters())
        local = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in params)
        full = sum(p.numel() for p in params)
        dt = next((p for p in params if isinstance(p, DTensor)), None)
        if dt is None:  # DDP or one process: every rank holds everything
            replicate, shard = dist.get_world_size(), 1
        else:
            shape = tuple(dt.device_mesh.shape)
            replicate, shard = shape if len(shape) == 2 else (1, shape[0])
        metrics = {"parallel/local_param_fraction": local / full, "parallel/world_size": dist.get_world_size(),
                   "parallel/mesh_replicate": replicate, "parallel/mesh_shard": shard,
                   "parallel/tied_params": int(tied.item())}
        logger.log_metrics(metrics)
