"""One rank of the strict-device fine-tuning test: ``composer -n 2 -m tests.training.strict_finetune_rank OUT k=v ...``.

Builds the fine-tuning Trainer on a ``StrictDevice``, runs ``finetune`` (held-out response loss, train,
response loss again) with host-tensor collectives refused, and writes ``OUT/rank<N>.json``: the run
summary and every collective issued. A host-tensor collective ends the process with NCCL's error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.training.strict_device import Placement, StrictDevice, strict_collectives


def main(argv: list[str]) -> None:
    import composer.trainer.trainer as composer_trainer
    from composer.utils import dist

    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.finetune.config import FinetuneConfig
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer, finetune

    out, overrides = Path(argv[0]), argv[1:]
    placement = Placement()
    device = StrictDevice(placement)
    composer_trainer.get_device = lambda _requested: device  # this process only: the trainer's device
    cfg = load_config(FinetuneConfig, None, overrides)
    trainer = build_finetune_trainer(cfg)
    with strict_collectives(placement):
        summary = finetune(trainer, cfg)
    trainer.close()
    (out / f"rank{dist.get_global_rank()}.json").write_text(json.dumps({"summary": summary, "calls": placement.calls}))


if __name__ == "__main__":
    main(sys.argv[1:])
