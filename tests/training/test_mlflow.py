"""MLflow tracking: an offline file store under the run, with params (the resolved config) and metrics."""

from pathlib import Path

from llmfoundry_lite.config import load_config
from llmfoundry_lite.training.config import TrainConfig
from tests.training.shards import ROOT, tiny_overrides


def test_mlflow_logs_config_and_metrics_to_a_local_store(tiny_shards, tmp_path):
    from mlflow.tracking import MlflowClient

    from llmfoundry_lite.training.trainer import build_trainer, fit

    save = tmp_path / "run"
    overrides = tiny_overrides(tiny_shards, save, max_duration="2ba", eval_interval="2ba", save_interval="2ba")
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", [*overrides, "loggers.mlflow={experiment_name: ft}"])
    trainer = fit(build_trainer(cfg), cfg)
    trainer.close()
    store = save / "mlruns"
    assert store.is_dir()
    client = MlflowClient(tracking_uri=f"file:{store.resolve()}")
    experiment = client.get_experiment_by_name("ft")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["optimizer.lr"] == str(cfg.optimizer.lr)
    assert run.data.params["model.d_model"] == "64"
    history = client.get_metric_history(run.info.run_id, "loss/train/total")
    assert [m.step for m in history] == [0, 1] and all(m.value > 0 for m in history)
    assert Path(save / "config.yaml").is_file()
