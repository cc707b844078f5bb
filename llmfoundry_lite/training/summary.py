"""What a finished run writes next to its checkpoints: train_summary.json and loss_curve.png."""

from __future__ import annotations

import json
from pathlib import Path

from composer import Trainer

from llmfoundry_lite.callbacks.metrics_file import read_metrics
from llmfoundry_lite.training.data import unigram_entropy

LOSS = "loss/train/total"
EVAL = "metrics/eval/LanguageCrossEntropy"
TOKENS_PER_S = "throughput/tokens_per_sec"


def run_summary(trainer: Trainer, metrics_path: Path) -> dict:
    """Headline numbers: tokens, batches, speed, final train/eval loss and the unigram bar."""
    ts = trainer.state.timestamp
    losses = read_metrics(metrics_path, LOSS) if metrics_path.is_file() else {}
    speeds = read_metrics(metrics_path, TOKENS_PER_S) if metrics_path.is_file() else {}
    wall = ts.total_wct.total_seconds()
    dataset = trainer.state.evaluators[0].dataloader.dataloader.dataset
    seq_len = trainer.state.evaluators[0].dataloader.dataloader.dataset.objective.max_seq_len
    return {
        # Composer's clock counts non-padding tokens (training/parallel.py); positions include padding.
        "tokens_trained": int(ts.token),
        "samples_trained": int(ts.sample),
        "positions_processed": int(ts.sample) * seq_len,
        "batches": int(ts.batch),
        "tokens_per_s": list(speeds.values())[-1] if speeds else int(ts.token) / max(wall, 1e-9),
        "final_train_loss": list(losses.values())[-1] if losses else float("nan"),
        "final_eval_loss": float(trainer.state.eval_metrics["eval"]["LanguageCrossEntropy"].compute()),
        "unigram_entropy": unigram_entropy(dataset, dataset.objective.special.pad),
        "samples_by_stream": _samples_by_stream(trainer),
        "rollbacks": _rollbacks(trainer),
    }


def _rollbacks(trainer: Trainer) -> list[dict]:
    """The rollback guard's events (step, trigger, loss, samples skipped); empty without the guard."""
    from llmfoundry_lite.callbacks.rollback import RollbackGuard

    guards = [c for c in trainer.state.callbacks if isinstance(c, RollbackGuard)]
    return list(guards[0].events) if guards else []


def _samples_by_stream(trainer: Trainer) -> dict[str, int]:
    from llmfoundry_lite.callbacks.streams import StreamCounter

    counters = [c for c in trainer.state.callbacks if isinstance(c, StreamCounter)]
    return counters[0].samples_by_stream() if counters else {}


def plot_losses(metrics_path: Path, out: Path) -> Path:
    """Train loss per step and eval loss at each evaluation, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = read_metrics(metrics_path, LOSS), read_metrics(metrics_path, EVAL)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(list(train), list(train.values()), lw=1, label="train loss")
    ax.plot(list(evals), list(evals.values()), "o-", label="eval loss (next-token)")
    ax.set_xlabel("step")
    ax.set_ylabel("nats / token")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_run_summary(trainer: Trainer, save_folder: str | Path) -> dict:
    """Write train_summary.json (and loss_curve.png when metrics.jsonl exists); returns the summary."""
    folder = Path(save_folder)
    metrics = folder / "metrics.jsonl"
    summary = run_summary(trainer, metrics)
    (folder / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if metrics.is_file():
        plot_losses(metrics, folder / "loss_curve.png")
    return summary
