import pytest

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.training.config import TrainConfig


def test_heads_must_divide_d_model():
    with pytest.raises(ConfigError, match=r"model.d_model=256 is not divisible by model.n_heads=3"):
        load_config(TrainConfig, None, ["model.d_model=256", "model.n_heads=3"])


def test_gqa_heads_must_divide():
    with pytest.raises(ConfigError, match="n_kv_heads"):
        load_config(TrainConfig, None, ["model.n_heads=4", "model.n_kv_heads=3"])


def test_save_folder_interpolates_run_name():
    assert load_config(TrainConfig, None, ["run_name=abc"]).save_folder == "runs/abc"


def test_unknown_precision_lists_choices():
    with pytest.raises(ConfigError, match="choose from amp_bf16, amp_fp16, fp32"):
        load_config(TrainConfig, None, ["precision=bf16"])
