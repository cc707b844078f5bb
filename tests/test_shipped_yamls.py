"""Every shipped YAML must load against its schema, so none of them rots."""

import subprocess
import sys
from pathlib import Path

import pytest

from llmfoundry_lite.config import load_config
from llmfoundry_lite.corpus.local_stack import LocalStackConfig
from llmfoundry_lite.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TRAIN_YAMLS = sorted((ROOT / "yamls").glob("*.yaml"))
CORPUS_YAMLS = [ROOT / "yamls" / "data" / "local-stack.yaml"]
FINETUNE_YAMLS = sorted((ROOT / "yamls" / "finetune").glob("*.yaml"))


@pytest.mark.parametrize("path", TRAIN_YAMLS, ids=lambda p: p.name)
def test_train_yaml_loads(path):
    cfg = load_config(TrainConfig, path)
    assert cfg.model.vocab_size > 0


@pytest.mark.parametrize("path", FINETUNE_YAMLS, ids=lambda p: p.name)
def test_finetune_yaml_loads(path):
    from llmfoundry_lite.finetune.config import FinetuneConfig

    cfg = load_config(FinetuneConfig, path)
    assert cfg.base and cfg.train_loader.data


@pytest.mark.parametrize("path", CORPUS_YAMLS, ids=lambda p: p.name)
def test_corpus_yaml_loads(path):
    assert load_config(LocalStackConfig, path).max_total_bytes > 0


def test_train_cli_rejects_misspelled_key_before_heavy_imports():
    proc = subprocess.run(
        [sys.executable, "train.py", str(TRAIN_YAMLS[0]), "model.n_layerz=2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "model.n_layerz" in proc.stderr and "n_layers" in proc.stderr
    assert "Traceback" not in proc.stderr
