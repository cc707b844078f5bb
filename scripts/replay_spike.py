"""Replay a recorded loss spike: ``python scripts/replay_spike.py runs/<run> [spike_number]``.

Rebuilds the exact batch (global sample indices from loss_spikes.jsonl, same objective draws),
loads the checkpoint written before the spike and prints each sample's loss, worst first.
"""

import sys

from llmfoundry_lite.cli.replay_spike import main

if __name__ == "__main__":
    main(sys.argv[1:])
