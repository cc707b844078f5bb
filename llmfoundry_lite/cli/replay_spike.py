"""``python scripts/replay_spike.py runs/<run> [spike_number]``: replay a recorded loss spike or rollback.

Rebuilds the exact samples (global sample indices from loss_spikes.jsonl, same objective draws): a
spike's batch, scored with the checkpoint written before it, or a rollback's whole skipped window,
scored with the weights the rollback restored; prints each sample's loss, worst first, with its stream,
shard file and the start of its text (``training/replay.py``).
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
    print(headline(out["record"], out["checkpoint"]))
    trigger = set(out["record"]["sample_indices"])
    for index, loss in sorted(out["per_sample_loss"].items(), key=lambda kv: -kv[1]):
        where = out["samples"][index]
        mark = "*" if index in trigger and "rollback" in out["record"] else " "
        print(f" {mark}sample {index:>8}: loss {loss:.4f}  {where['stream']}  {where['shard']}  {where['text']!r}")
    if "rollback" in out["record"]:
        print("  (* = in the batch that triggered the rollback)")


def headline(rec: dict, checkpoint: str) -> str:
    """What happened at the recorded step, and which weights the samples were scored with."""
    loss = "non-finite" if rec["loss"] is None else f"{rec['loss']:.4f}"
    base = "" if rec["baseline_mean"] is None else f" vs baseline {rec['baseline_mean']:.4f} ± {rec['baseline_std']:.4f}"
    line = f"{rec.get('trigger', 'spike')} at step {rec['step']} (epoch {rec['epoch']}): loss {loss}{base}"
    if "rollback" in rec:
        rb = rec["rollback"]
        line += (f"\nrollback {rb['number']}: restored the weights from before batch {rb['restored_step']}, skipped "
                 f"{rb['skipped_samples']} samples in batches {rb['skipped_batches'][0]}..{rb['skipped_batches'][-1]} "
                 f"({', '.join(f'{n} {c}' for n, c in rb['skipped_by_stream'].items() if c)})")
    return line + f"\nscored with {checkpoint}"
