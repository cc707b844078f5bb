import subprocess
import sys

import pytest

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.training.config import TrainConfig
from tests.training.shards import ROOT


def test_heads_must_divide_d_model():
    with pytest.raises(ConfigError, match=r"model.d_model=256 is not divisible by model.n_heads=3"):
        load_config(TrainConfig, None, ["model.d_model=256", "model.n_heads=3"])


def test_gqa_heads_must_divide():
    with pytest.raises(ConfigError, match="n_kv_heads"):
        load_config(TrainConfig, None, ["model.n_heads=4", "model.n_kv_heads=3"])


def test_save_folder_interpolates_run_name():
    assert load_config(TrainConfig, None, ["run_name=abc"]).save_folder == "runs/abc"


def test_unknown_precision_lists_choices():
    with pytest.raises(ConfigError, match="choose from amp_bf16, amp_fp16, auto, fp32"):
        load_config(TrainConfig, None, ["precision=bf16"])


def test_microbatch_must_divide_the_batch():
    with pytest.raises(ConfigError, match="device_train_microbatch_size=3 does not divide the per-device batch of 8"):
        load_config(TrainConfig, None, ["global_train_batch_size=8", "device_train_microbatch_size=3"])
    assert load_config(TrainConfig, None, ["device_train_microbatch_size=auto"]).device_train_microbatch_size == "auto"


def test_global_batch_splits_over_processes_with_clear_errors():
    cfg = load_config(TrainConfig, None, ["global_train_batch_size=12", "device_train_microbatch_size=2"])
    assert cfg.device_batch_size(3) == 4
    with pytest.raises(ValueError, match="global_train_batch_size=12 is not divisible by the 5 training processes"):
        cfg.device_batch_size(5)
    with pytest.raises(ValueError, match="does not divide the per-device batch of 3"):
        load_config(TrainConfig, None, ["global_train_batch_size=12", "device_train_microbatch_size=2"]).device_batch_size(4)


@pytest.mark.parametrize("key", ["max_duration", "eval_interval", "save_interval", "scheduler.t_warmup"])
def test_time_strings_are_checked(key):
    with pytest.raises(ConfigError, match=f"{key}='10 batches' is not a Composer time string"):
        load_config(TrainConfig, None, [f"{key}=10 batches"])


def test_fsdp_section_validates():
    cfg = load_config(TrainConfig, None, ["fsdp_config.sharding_strategy=HYBRID_SHARD",
                                          "fsdp_config.data_parallel_replicate_degree=2"])
    assert cfg.fsdp_config.data_parallel_replicate_degree == 2
    with pytest.raises(ConfigError, match=r"fsdp_config.sharding_strategy='ZERO3'; choose from"):
        load_config(TrainConfig, None, ["fsdp_config.sharding_strategy=ZERO3"])
    with pytest.raises(ConfigError, match="data_parallel_replicate_degree must be positive"):
        load_config(TrainConfig, None, ["fsdp_config.data_parallel_replicate_degree=0"])
    with pytest.raises(ConfigError, match="unknown config key 'fsdp_config.limit_all_gathers'"):
        load_config(TrainConfig, None, ["fsdp_config.limit_all_gathers=true"])  # an FSDP1 knob, refused by name


def test_auto_microbatching_is_refused_under_fsdp2_with_the_reason():
    assert load_config(TrainConfig, None, ["device_train_microbatch_size=auto"]).device_train_microbatch_size == "auto"
    with pytest.raises(ConfigError, match="device_train_microbatch_size=auto is not supported with fsdp_config"):
        load_config(TrainConfig, None, ["device_train_microbatch_size=auto", "fsdp_config.sharding_strategy=FULL_SHARD"])


def test_console_interval_is_a_batch_count():
    assert load_config(TrainConfig, None, ["loggers.console_log_interval=25ba"]).loggers.console_interval_batches() == 25
    with pytest.raises(ConfigError, match="loggers.console_log_interval='1ep'"):
        load_config(TrainConfig, None, ["loggers.console_log_interval=1ep"])


def test_optimizer_scheduler_and_wandb_choices():
    with pytest.raises(ConfigError, match=r"optimizer.name='adam'; choose from \['decoupled_adamw', 'decoupled_lionw'\]"):
        load_config(TrainConfig, None, ["optimizer.name=adam"])
    with pytest.raises(ConfigError, match="scheduler.name='cosine'"):
        load_config(TrainConfig, None, ["scheduler.name=cosine"])
    with pytest.raises(ConfigError, match="loggers.wandb.mode='cloud'"):
        load_config(TrainConfig, None, ["loggers.wandb.mode=cloud"])
    assert load_config(TrainConfig, None, ["loggers.wandb=null"]).loggers.wandb is None


def test_typo_fails_fast_without_importing_torch():
    code = ("import sys; from train import main\n"
            "try:\n    main(['yamls/code-tiny.yaml', 'optimizer.lrr=1'])\n"
            "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules, 'composer' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "exit 2 False False" in proc.stdout
    assert "unknown config key 'optimizer.lrr'" in proc.stderr


@pytest.mark.parametrize(("overrides", "message"), [
    (["rollback.enabled=true", "rollback.snapshot_interval=30"], r"save_interval=50ba is not a multiple of rollback"),
    (["rollback.lr_scale=2"], r"rollback.lr_scale=2.0 must be in \(0, 1\]"),
    (["rollback.snapshot_device=gpu"], r"rollback.snapshot_device='gpu'; choose from \['cpu', 'device'\]"),
    (["rollback.max_rollbacks=-1"], r"rollback.max_rollbacks .* must be >= 0"),
    (["rollback.snapshots=3"], r"snapshots"),
    (["fault_injection={nan_at_batch: 3, spike_at_batch: 3}"], r"name the same batch"),
    (["fault_injection={spike_at_batch: 3, spike_scale: 0.5}"], r"spike_scale must be > 1"),
])
def test_rollback_and_fault_injection_settings_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", overrides)


def test_rollback_is_on_in_the_gpu_presets_with_checkpoints_on_snapshots():
    for name in ("code-125m", "code-350m", "code-1b", "code-3b"):
        cfg = load_config(TrainConfig, ROOT / f"yamls/{name}.yaml")
        assert cfg.rollback.enabled and int(cfg.save_interval[:-2]) % cfg.rollback.snapshot_interval == 0
    assert not load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml").rollback.enabled
