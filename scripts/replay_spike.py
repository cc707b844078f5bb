"""Replay a recorded loss spike: ``python scripts/replay_spike.py runs/<run> [spike_number]``.

Rebuilds the exact batch (global sample indices from loss_spikes.jsonl, same objective draws),
loads the checkpoint written before the spike and prints each sample's loss, worst first.
"""

import sys

from llmfoundry_lite.training.replay import replay_spike


def main(argv: list[str]) -> None:
    if not argv or len(argv) > 2:
        raise SystemExit(__doc__)
    out = replay_spike(argv[0], int(argv[1]) if len(argv) == 2 else -1)
    rec = out["record"]
    print(f"spike at step {rec['step']} (epoch {rec['epoch']}): loss {rec['loss']:.4f} vs baseline "
          f"{rec['baseline_mean']:.4f} ± {rec['baseline_std']:.4f}; replayed with {out['checkpoint']}")
    for index, loss in sorted(out["per_sample_loss"].items(), key=lambda kv: -kv[1]):
        print(f"  sample {index:>10}: loss {loss:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
