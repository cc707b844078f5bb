"""Fine-tuning runs end to end on CPU: from our checkpoint, full weights or LoRA, resumable, responses only."""

import json
from pathlib import Path

import pytest
import torch

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.finetune.config import FinetuneConfig
from tests.training.shards import ROOT, tiny_overrides

PAIRS = [("Write a function that adds two numbers.", "def add(a, b):\n    return a + b\n"),
         ("Return the larger of two values.", "def larger(a, b):\n    return a if a > b else b\n"),
         ("Reverse a string.", "def reverse(s):\n    return s[::-1]\n"),
         ("Square a number.", "def square(x):\n    return x * x\n")]


@pytest.fixture(scope="module")
def base_checkpoint(tiny_shards, tmp_path_factory):
    """A 2-layer decoder pretrained for 2 steps on the fixture shards: its save folder."""
    from llmfoundry_lite.training.config import TrainConfig
    from llmfoundry_lite.training.trainer import build_trainer

    save = tmp_path_factory.mktemp("base")
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml",
                      tiny_overrides(tiny_shards, save, max_duration="2ba", eval_interval="2ba", save_interval="2ba"))
    trainer = build_trainer(cfg)
    trainer.fit()
    trainer.close()
    return save


@pytest.fixture(scope="module")
def instructions(tmp_path_factory):
    path = tmp_path_factory.mktemp("sft") / "train.jsonl"
    rows = [{"prompt": p, "response": r} for p, r in PAIRS * 8]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return path


def _cfg(base, data, save, *extra) -> FinetuneConfig:
    return load_config(FinetuneConfig, None, [
        f"base={base}", f"train_loader.data={data}", "train_loader.max_seq_len=64",
        f"eval_loader={{data: {data}, max_seq_len: 64}}", f"save_folder={save}", "global_train_batch_size=4",
        "device_eval_batch_size=4", "max_duration=6ba", "eval_interval=6ba", "save_interval=3ba",
        "scheduler.t_warmup=1ba", "optimizer.lr=3e-3", "loggers.wandb=null", "loggers.console_log_interval=1ba",
        "callbacks.speed_monitor.peak_flops=1e11", *extra])


def _run(cfg):
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer, finetune

    trainer = build_finetune_trainer(cfg)
    summary = finetune(trainer, cfg)
    return trainer, summary


def test_full_finetune_lowers_the_heldout_response_loss(base_checkpoint, instructions, tmp_path):
    trainer, summary = _run(_cfg(base_checkpoint, instructions, tmp_path / "full"))
    assert summary["heldout_response_loss_after"] < summary["heldout_response_loss_before"]
    assert summary["samples_by_stream"] == {"finetune": 24} and summary["batches"] == 6
    dataset = trainer.state.train_dataloader.dataset
    assert dataset.summary()["dropped_by_reason"] == {"not_json": 1}
    # The clock counts non-padding tokens (prompt included); the loss is weighted by response tokens.
    assert 0 < summary["tokens_trained"] < 6 * 4 * 64
    assert json.loads((tmp_path / "full" / "train_summary.json").read_text())["batches"] == 6
    trainer.close()


def test_lora_trains_adapters_only_saves_them_alone_and_resumes(base_checkpoint, instructions, tmp_path):
    # A constant schedule: the LR must not depend on max_duration, which the interrupted run shortens.
    lora = ["lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [qkv_proj, o_proj]}", "scheduler.name=constant_with_warmup"]
    straight, _ = _run(_cfg(base_checkpoint, instructions, tmp_path / "straight", *lora))
    model = straight.state.model.model
    base = torch.load(sorted(Path(base_checkpoint).glob("ep*-ba2-rank0.pt"))[0], map_location="cpu",
                      weights_only=False)["state"]["model"]
    for name, p in model.named_parameters():
        if "lora_" not in name:  # frozen: exactly the base weight
            plain = "model." + name.replace(".base_layer", "")
            assert torch.equal(p.detach(), base[plain]), name
    ckpt = torch.load(tmp_path / "straight" / "latest-rank0.pt", map_location="cpu", weights_only=False)
    keys = list(ckpt["state"]["model"])
    assert keys and all("lora_" in k for k in keys)
    full_size = (Path(base_checkpoint) / "latest-rank0.pt").resolve().stat().st_size
    assert (tmp_path / "straight" / "latest-rank0.pt").resolve().stat().st_size < full_size / 4
    assert ckpt["state"]["callbacks"]["FinetuneInfo"]["lora"]["r"] == 4
    straight.close()
    first, _ = _run(_cfg(base_checkpoint, instructions, tmp_path / "resumed", *lora, "max_duration=3ba"))
    first.close()
    resumed, _ = _run(_cfg(base_checkpoint, instructions, tmp_path / "resumed", *lora))
    assert int(resumed.state.timestamp.batch) == 6
    for (name, a), (_, b) in zip(model.named_parameters(), resumed.state.model.model.named_parameters(), strict=True):
        if "lora_" in name:
            assert torch.allclose(a, b, atol=1e-6), name
    resumed.close()


def test_config_needs_base_and_data_and_checks_lora():
    with pytest.raises(ConfigError, match=r"base: name the checkpoint"):
        load_config(FinetuneConfig, None, ["train_loader.data=x.jsonl"])
    with pytest.raises(ConfigError, match=r"lora.target_modules: unknown \['q_proj'\]"):
        load_config(FinetuneConfig, None, ["base=b", "train_loader.data=x.jsonl", "lora={target_modules: [q_proj]}"])


def test_hf_base_with_unsupported_features_is_refused(tmp_path):
    from llmfoundry_lite.finetune.base import check_hf_config

    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "rope_scaling": {"type": "linear"},
        "attention_bias": True, "head_dim": 32}))
    with pytest.raises(ValueError, match=r"unsupported Llama features rope_scaling=.*attention_bias=True.*head_dim=32"):
        check_hf_config(tmp_path)


def test_a_lora_save_folder_loads_and_exports_merged(base_checkpoint, instructions, tmp_path):
    from llmfoundry_lite.models.load import load_for_inference

    lora = ["lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [qkv_proj, gate_up_proj]}", "max_duration=2ba"]
    trainer, _ = _run(_cfg(base_checkpoint, instructions, tmp_path / "run", *lora))
    trained = trainer.state.model.model.eval()
    batch = next(iter(trainer.state.train_dataloader))
    with torch.no_grad():
        expected = trained(batch["input_ids"], segment_ids_BT=batch["segment_ids"])
    trainer.close()
    merged, tokenizer = load_for_inference(str(tmp_path / "run"))
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        got = merged(batch["input_ids"], segment_ids_BT=batch["segment_ids"])
    assert torch.allclose(got, expected, atol=1e-4)
    from transformers import LlamaForCausalLM

    from llmfoundry_lite.models.export_command import export_checkpoint

    out, params = export_checkpoint(tmp_path / "run", tmp_path / "hf", 1 << 30)

    hf = LlamaForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    ids = batch["input_ids"][:1, :16]
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, merged(ids), atol=1e-4)
    assert out == tmp_path / "hf" and params == merged.cfg.num_params()


@pytest.mark.parametrize("parallelism", [[], ["fsdp_config={sharding_strategy: FULL_SHARD}"]], ids=["ddp", "fsdp2"])
def test_lora_trains_on_two_ranks(base_checkpoint, instructions, tmp_path, parallelism):
    from tests.training.shards import launch_ranks

    args = ["train.py", f"base={base_checkpoint}", f"train_loader.data={instructions}", "train_loader.max_seq_len=64",
            f"save_folder={tmp_path / 'ddp'}", "global_train_batch_size=4", "max_duration=2ba", "save_interval=2ba",
            "scheduler.t_warmup=1ba", "loggers.wandb=null", "callbacks.speed_monitor.peak_flops=1e11",
            "lora={r: 4, alpha: 8, target_modules: [qkv_proj, o_proj]}", *parallelism]
    proc = launch_ranks(2, args)
    assert ("FSDP2" in proc.stdout) == bool(parallelism)
    assert "finetune: LoRA r=4 on qkv_proj, o_proj" in proc.stdout
    summary = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    assert summary["samples_by_stream"] == {"finetune": 8} and summary["batches"] == 2
    ckpt = torch.load(tmp_path / "ddp" / "latest-rank0.pt", map_location="cpu", weights_only=False)
    assert all("lora_" in k for k in ckpt["state"]["model"])
