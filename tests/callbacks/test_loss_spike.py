import json
import math
from types import SimpleNamespace

import torch

from llmfoundry_lite.callbacks.loss_spike import LossSpikeDetector, is_spike


class RecordingLogger:
    def __init__(self):
        self.metrics = []

    def log_metrics(self, metrics, step=None):
        self.metrics.append(metrics)


def state_at(step: int, loss: float, indices: list[int], last_microbatch_loss: float = 1.0) -> SimpleNamespace:
    # total_loss_dict: Composer's all-reduced full-batch loss; state.loss: only the last microbatch's.
    return SimpleNamespace(
        loss=torch.tensor(last_microbatch_loss), total_loss_dict={"loss/train/total": loss},
        batch={"sample_index": torch.tensor(indices)},
        timestamp=SimpleNamespace(batch=step + 1, epoch=0),  # at batch end Composer has counted the batch
    )


def test_is_spike_needs_both_z_score_and_ratio():
    flat = [2.0] * 10
    assert not is_spike(2.0, flat, z_threshold=6, ratio_threshold=1.5)
    assert not is_spike(2.9, flat, z_threshold=6, ratio_threshold=1.5)  # std 0 but below 1.5x
    assert is_spike(3.1, flat, z_threshold=6, ratio_threshold=1.5)
    noisy = [1.0, 5.0] * 5  # mean 3, std 2
    assert not is_spike(14.0, noisy, z_threshold=6, ratio_threshold=1.5)  # 14 < 3 + 12
    assert is_spike(15.5, noisy, z_threshold=6, ratio_threshold=1.5)
    assert is_spike(math.nan, flat, z_threshold=6, ratio_threshold=1.5)


def test_detector_records_exact_batch_sample_indices(tmp_path):
    det = LossSpikeDetector(str(tmp_path), window=20, min_history=5)
    logger = RecordingLogger()
    losses = [3.0, 2.9, 2.95, 2.85, 2.9, 2.8, 9.0, 2.8]
    for step, loss in enumerate(losses):
        det.batch_end(state_at(step, loss, [100 + step, 200 + step]), logger)
    records = [json.loads(line) for line in (tmp_path / "loss_spikes.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert records[0]["step"] == 6 and records[0]["loss"] == 9.0
    assert records[0]["sample_indices"] == [106, 206]
    assert 9.0 not in det.history  # the spike stays out of the baseline
    assert logger.metrics == [{"loss_spike/count": 1, "loss_spike/loss": 9.0}]
    restored = LossSpikeDetector(str(tmp_path))
    restored.load_state_dict(det.state_dict())
    assert list(restored.history) == list(det.history) and restored.num_spikes == 1


def test_detector_reads_the_full_batch_loss_not_the_last_microbatch(tmp_path):
    det = LossSpikeDetector(str(tmp_path), window=20, min_history=3)
    for step in range(5):  # a huge last microbatch, an ordinary full batch: no spike
        det.batch_end(state_at(step, 3.0, [step], last_microbatch_loss=50.0), RecordingLogger())
    assert not (tmp_path / "loss_spikes.jsonl").exists() and list(det.history) == [3.0] * 5
    det.batch_end(SimpleNamespace(total_loss_dict={}), RecordingLogger())  # no loss this step: nothing to judge
    assert len(det.history) == 5
