import torch

from llmfoundry_lite.callbacks.metrics_file import JSONLinesLogger, read_metrics


def test_jsonl_logger_keeps_full_precision_and_last_write_wins(tmp_path):
    path = tmp_path / "m.jsonl"
    log = JSONLinesLogger(path)
    log.log_metrics({"loss": torch.tensor(1.2345678901234567, dtype=torch.float64)}, step=0)
    log.log_metrics({"loss": 2.5, "lr": 0.1}, step=1)
    log.log_metrics({"loss": 2.25}, step=1)  # a resumed run re-logs step 1
    assert read_metrics(path, "loss") == {0: 1.2345678901234567, 1: 2.25}
    assert read_metrics(path, "lr") == {1: 0.1}
