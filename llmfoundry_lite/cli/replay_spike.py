"""``python scripts/replay_spike.py runs/<run> [spike_number]``: replay a recorded loss spike.

Rebuilds the exact batch (global sample indices from loss_spikes.jsonl, same objective draws),
loads the checkpoint written before the spike and prints each sample's loss, worst first
(``training/replay.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmfoundry_lite.cli.common import user_errors


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The run folder and which spike (argparse exits 2 naming a bad argument)."""
    p = argparse.ArgumentParser(prog="scripts/replay_spike.py", description=__doc__.split("\n\n")[1])
    p.add_argument("save_folder", help="the run's save_folder (holds loss_spikes.jsonl, config.yaml, checkpoints)")
    p.add_argument("spike", nargs="?", type=int, default=-1,
                   help="index into loss_spikes.jsonl (0 = first, default -1 = the last spike)")
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    """Replay the spike and print each sample's loss, worst first."""
    args = parse_args(argv)
    with user_errors():  # no such folder, no loss_spikes.jsonl in it, or no checkpoint before the spike
        if not Path(args.save_folder).is_dir():  # said before torch loads, and not as "recorded no spike"
            raise FileNotFoundError(f"no run folder at {args.save_folder}")
        from llmfoundry_lite.training.replay import replay_spike

        out = replay_spike(args.save_folder, args.spike)
    rec = out["record"]
    print(f"spike at step {rec['step']} (epoch {rec['epoch']}): loss {rec['loss']:.4f} vs baseline "
          f"{rec['baseline_mean']:.4f} ± {rec['baseline_std']:.4f}; replayed with {out['checkpoint']}")
    for index, loss in sorted(out["per_sample_loss"].items(), key=lambda kv: -kv[1]):
        print(f"  sample {index:>10}: loss {loss:.4f}")
