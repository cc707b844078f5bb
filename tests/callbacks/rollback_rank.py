"""One rank of a rollback run: ``composer -n 2 -m tests.callbacks.rollback_rank OUT k=v ...`` (or ``run`` in-process).

Builds the pretraining Trainer on a ``StrictDevice`` (a collective on a host tensor fails as under NCCL),
trains, and writes ``OUT/rank<N>.json``: the sample ids of every batch whose optimizer step had gradients
to apply (seen by a global optimizer step post-hook, independent of the guard's own bookkeeping) and every
collective issued.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from tests.training.strict_device import Placement, StrictDevice, strict_collectives


def run(out: Path, overrides: list[str]) -> dict:
    import composer.trainer.trainer as composer_trainer
    from composer.utils import dist

    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.training.config import TrainConfig
    from llmfoundry_lite.training.trainer import build_trainer, fit

    placement = Placement()
    device = StrictDevice(placement)
    previous = composer_trainer.get_device
    composer_trainer.get_device = lambda _requested: device  # the trainer's device, for this run only
    try:
        cfg = load_config(TrainConfig, Path(__file__).parents[2] / "yamls/code-tiny.yaml", overrides)
        trainer = build_trainer(cfg)
    finally:
        composer_trainer.get_device = previous
    stepped: list[list[int]] = []

    def record(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        # After the step: Composer may pass the forward/backward as the step's closure, so only then do the
        # gradients the update used exist (a pre-hook would see the previous batch's).
        if any(p.grad is not None for group in optimizer.param_groups for p in group["params"]):
            stepped.append(trainer.state.batch["sample_index"].tolist())

    hook = register_optimizer_step_post_hook(record)
    try:
        with strict_collectives(placement):
            fit(trainer, cfg)
    finally:
        hook.remove()
        trainer.close()
    result = {"stepped": stepped, "calls": placement.calls}
    (out / f"rank{dist.get_global_rank()}.json").write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2:])
