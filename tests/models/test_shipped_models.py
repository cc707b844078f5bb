"""Every shipped training YAML builds its model on the meta device with the parameter count its header states."""

import re
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.config import load_config
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TRAIN_YAMLS = sorted((ROOT / "yamls").glob("code-*.yaml"))
NOMINAL = {"code-tiny": 7.4e6, "code-125m": 125e6, "code-350m": 350e6, "code-1b": 1e9, "code-3b": 2.7e9}


def test_all_presets_ship():
    assert set(NOMINAL) <= {p.stem for p in TRAIN_YAMLS}


@pytest.mark.parametrize("path", TRAIN_YAMLS, ids=lambda p: p.name)
def test_preset_builds_on_meta_with_documented_parameter_count(path):
    cfg = load_config(TrainConfig, path)
    with torch.device("meta"):
        model = Transformer(cfg.model)
    count = sum(p.numel() for p in model.parameters())
    header = re.search(r"^# ([\d,]+) parameters", path.read_text(), re.MULTILINE)
    assert header, f"{path.name} header must state '# N parameters'"
    assert count == int(header.group(1).replace(",", "")) == cfg.model.num_params()
    if path.stem in NOMINAL:
        assert 0.8 < count / NOMINAL[path.stem] < 1.25  # the name does not lie
    tokens = re.search(r"^# (\d+) x (\d+) = ([\d,]+) tokens/step", path.read_text(), re.MULTILINE)
    assert tokens and int(tokens.group(3).replace(",", "")) == cfg.global_train_batch_size * cfg.model.max_seq_len
    assert int(tokens.group(1)) == cfg.global_train_batch_size and int(tokens.group(2)) == cfg.model.max_seq_len


def test_tiny_matches_the_demo_tokenizer_size():
    cfg = load_config(TrainConfig, ROOT / "yamls" / "code-tiny.yaml")
    assert (cfg.model.vocab_size, cfg.model.max_seq_len, cfg.precision) == (8192, 512, "fp32")
