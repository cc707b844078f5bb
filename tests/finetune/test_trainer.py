"""Fine-tuning runs end to end on CPU: from our checkpoint, full weights or LoRA, resumable, responses only."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
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


def test_an_hf_base_is_built_on_meta_without_reading_its_weights(base_checkpoint, tmp_path, monkeypatch):
    """An FSDP rank other than 0 builds an HF base from its config.json alone (the shape rank 0 loads) and
    receives rank 0's weights; before, every rank read the whole fp32 base."""
    from llmfoundry_lite.cli.export import export_checkpoint
    from llmfoundry_lite.finetune.base import base_on_meta, load_base
    from llmfoundry_lite.models import hf_export

    hf_base = tmp_path / "hf_base"
    export_checkpoint(base_checkpoint, hf_base, 1 << 30)
    loaded, tokenizer = load_base(str(hf_base))
    monkeypatch.setattr(hf_export, "from_hf", lambda path: pytest.fail(f"rank read the weights of {path}"))
    meta, meta_tokenizer = base_on_meta(str(hf_base))
    assert meta.cfg == loaded.cfg and meta.training
    assert {p.device.type for p in meta.parameters()} == {"meta"}
    assert [(n, p.shape) for n, p in meta.named_parameters()] == [(n, p.shape) for n, p in loaded.named_parameters()]
    assert meta_tokenizer.get_vocab() == tokenizer.get_vocab()
    config = json.loads((hf_base / "config.json").read_text())
    (hf_base / "config.json").write_text(json.dumps({**config, "attention_bias": True}))
    with pytest.raises(ValueError, match="unsupported Llama features attention_bias=True"):
        base_on_meta(str(hf_base))  # refused on every rank, as rank 0's load_base refuses it


def test_a_lora_save_folder_loads_and_exports_merged(base_checkpoint, instructions, tmp_path):
    from llmfoundry_lite.finetune.load import load_model
    from llmfoundry_lite.models.load import load_for_inference

    # 3 batches: Composer's warmup gives the first two steps LR 0 (t_warmup=1ba), the third trains.
    lora = ["lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [qkv_proj, gate_up_proj]}", "max_duration=3ba"]
    trainer, _ = _run(_cfg(base_checkpoint, instructions, tmp_path / "run", *lora))
    trained = trainer.state.model.model.eval()
    batch = next(iter(trainer.state.train_dataloader))
    with torch.no_grad():
        expected = trained(batch["input_ids"], segment_ids_BT=batch["segment_ids"])
    trainer.close()
    with pytest.raises(ValueError, match="holds LoRA adapters.*finetune.load.load_model"):
        load_for_inference(str(tmp_path / "run"))  # models/ knows nothing of adapters
    merged, tokenizer = load_model(str(tmp_path / "run"))
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        got = merged(batch["input_ids"], segment_ids_BT=batch["segment_ids"])
    assert torch.allclose(got, expected, atol=1e-4)
    from transformers import LlamaForCausalLM

    from llmfoundry_lite.cli.export import export_checkpoint

    out, params = export_checkpoint(tmp_path / "run", tmp_path / "hf", 1 << 30)

    hf = LlamaForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    ids = batch["input_ids"][:1, :16]
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, merged(ids), atol=1e-4)
    assert out == tmp_path / "hf" and params == merged.cfg.num_params()
    # The export carries the chat template it was tuned with: transformers lays out a conversation
    # exactly as training did, and generation stops at end-of-turn.
    from transformers import AutoTokenizer, GenerationConfig

    from llmfoundry_lite.finetune.chat import CHAT_TEMPLATE, encode_conversation, role_token_ids

    hf_tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    roles = role_token_ids(tokenizer)
    message = "Reverse a <|reserved_1|> string."  # a literal role string in content stays text in training
    ours = [i for ids, _ in encode_conversation(tokenizer, [("user", "Reverse a string.")], roles) for i in ids]
    assert hf_tok.chat_template == CHAT_TEMPLATE
    assert hf_tok.apply_chat_template([{"role": "user", "content": "Reverse a string."}], add_generation_prompt=True,
                                      tokenize=True) == [*ours, roles["assistant"]]
    assert roles["user"] not in encode_conversation(tokenizer, [("user", message)], roles)[1][0]
    assert GenerationConfig.from_pretrained(str(tmp_path / "hf")).eos_token_id == [0, roles["end_of_turn"]]
    # The adapters alone, in peft's format, on the HF export of the base: the same logits as the merged model.
    from peft import PeftModel

    from llmfoundry_lite.finetune.peft_export import export_adapter

    export_checkpoint(base_checkpoint, tmp_path / "hf_base", 1 << 30)
    adapter, base, n = export_adapter(tmp_path / "run", tmp_path / "adapter", str(tmp_path / "hf_base"))
    assert n == 2 * 2 * (3 + 2)  # 2 layers x (A, B) x (q, k, v + gate, up)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config["peft_type"] == "LORA"
    assert sorted(config["target_modules"]) == ["gate_proj", "k_proj", "q_proj", "up_proj", "v_proj"]
    assert config["base_model_name_or_path"] == str((tmp_path / "hf_base").resolve())
    with_adapter = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base), str(adapter)).eval()
    plain_base = LlamaForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        assert torch.allclose(with_adapter(ids).logits, merged(ids), atol=1e-4)
        assert (plain_base(ids).logits - merged(ids)).abs().max() > 1e-3  # the adapters do change the model
    with pytest.raises(ValueError, match="is not a LoRA checkpoint"):
        export_adapter(base_checkpoint, tmp_path / "not_lora")
    # The command: the merged export also answers through its chat template; the adapter export reloads with peft.
    from llmfoundry_lite.cli.export import main

    main([str(tmp_path / "run"), "--output", str(tmp_path / "hf_cli"), "--max-new-tokens", "4"])
    assert (tmp_path / "hf_cli" / "sample_chat.txt").read_text().startswith("user: Write a function")
    main([str(tmp_path / "run"), "--output", str(tmp_path / "adapter_cli"), "--adapter-only", "--base-hf",
          str(tmp_path / "hf_base"), "--max-new-tokens", "4"])
    assert (tmp_path / "adapter_cli" / "sample_generation.txt").read_text().startswith("def add(a, b):")


RECORD_BASE_READS = "tests/finetune/record_base_reads.py"  # train.py, logging which rank reads checkpoint weights


@pytest.mark.parametrize("parallelism", [[], ["fsdp_config={sharding_strategy: FULL_SHARD, state_dict_type: sharded}"]],
                         ids=["ddp", "fsdp2-sharded"])
def test_lora_trains_on_two_ranks(base_checkpoint, instructions, tmp_path, parallelism, monkeypatch):
    from tests.training.shards import launch_ranks

    reads = tmp_path / "base_reads.log"
    monkeypatch.setenv("BASE_READS_LOG", str(reads))
    args = [RECORD_BASE_READS, f"base={base_checkpoint}", f"train_loader.data={instructions}", "train_loader.max_seq_len=64",
            f"save_folder={tmp_path / 'ddp'}", "global_train_batch_size=4", "max_duration=3ba", "save_interval=3ba",
            "scheduler.t_warmup=1ba", "loggers.wandb=null", "callbacks.speed_monitor.peak_flops=1e11",
            "lora={r: 4, alpha: 8, target_modules: [qkv_proj, o_proj]}", *parallelism]
    proc = launch_ranks(2, args)
    assert ("FSDP2" in proc.stdout) == bool(parallelism)
    assert "finetune: LoRA r=4 on qkv_proj, o_proj" in proc.stdout
    summary = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    # 3 batches: Composer's one-batch schedule lag gives the first two LR 0 (trainer.builders).
    assert summary["samples_by_stream"] == {"finetune": 12} and summary["batches"] == 3
    latest = (tmp_path / "ddp" / "latest-rank0.pt").resolve()
    if not parallelism:
        ckpt = torch.load(latest, map_location="cpu", weights_only=False)
        assert all("lora_" in k for k in ckpt["state"]["model"])
        return
    # A sharded (DCP) LoRA checkpoint: adapters only, and it exports merged like a whole one.
    from transformers import LlamaForCausalLM

    from llmfoundry_lite.cli.export import export_checkpoint
    from llmfoundry_lite.finetune.load import load_model

    # FSDP: rank 0 alone reads the base; rank 1 builds on the meta device and receives its shard from rank 0.
    base_file = (base_checkpoint / "latest-rank0.pt").resolve()
    assert reads.read_text().splitlines() == [f"0 {base_file}"]
    assert latest.is_dir()
    shard_bytes = sum(f.stat().st_size for f in latest.rglob("*") if f.is_file())
    assert shard_bytes < (base_checkpoint / "latest-rank0.pt").resolve().stat().st_size / 3, shard_bytes  # adapters only
    out, _ = export_checkpoint(tmp_path / "ddp", tmp_path / "hf", 1 << 30)
    ours, tokenizer = load_model(str(tmp_path / "ddp"))
    ids = torch.tensor([tokenizer.encode("def add(a, b):\n    return a + b\n").ids])
    base, _ = load_model(str(base_checkpoint))
    with torch.no_grad():
        merged = LlamaForCausalLM.from_pretrained(out).eval()(ids).logits
        assert torch.allclose(merged, ours(ids), atol=1e-4)
        assert (merged - base(ids)).abs().max() > 1e-4  # the trained adapters are in the export


CHATML = ("{% for m in messages %}<|reserved_5|>{{ m['role'] }}\n{{ m['content'] }}<|reserved_6|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|reserved_5|>assistant\n{% endif %}")


def test_an_hf_base_brings_its_own_chat_template(base_checkpoint, instructions, tmp_path):
    """A ChatML-style base (its markers are reserved tokens of this tokenizer): examples are laid out as
    its apply_chat_template lays them out, only the assistant text is scored, and the export keeps it."""
    from transformers import AutoTokenizer

    from llmfoundry_lite.cli.export import export_checkpoint
    from llmfoundry_lite.finetune.data import FinetuneDataConfig, FinetuneDataset
    from llmfoundry_lite.finetune.hf_chat import JinjaEncoder, read_chat_template
    from llmfoundry_lite.models.load import load_for_inference

    hf_base = tmp_path / "hf_base"
    export_checkpoint(base_checkpoint, hf_base, 1 << 30)
    config_path = hf_base / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps({**config, "chat_template": CHATML}))
    chat = read_chat_template(hf_base)
    _, tokenizer = load_for_inference(str(hf_base))
    start, end = tokenizer.token_to_id("<|reserved_5|>"), tokenizer.token_to_id("<|reserved_6|>")
    messages = [("user", "Square a number."), ("assistant", "def square(x):\n    return x * x\n")]
    pieces = JinjaEncoder(tokenizer, chat).encode(messages)
    hf = AutoTokenizer.from_pretrained(str(hf_base)).apply_chat_template(
        [{"role": r, "content": c} for r, c in messages], tokenize=True)
    assert [i for ids, _ in pieces for i in ids] == hf
    header, answer = pieces[1][0], pieces[2][0]
    assert header[0] == start and end in answer and start not in answer  # "<start>assistant\n" is prompt side
    literal = JinjaEncoder(tokenizer, chat).encode([("user", "say <|reserved_5|>"), ("assistant", "ok")])
    assert literal[0][0].count(start) == 1  # the template's marker only; the one in the content stays text
    dataset = FinetuneDataset(FinetuneDataConfig(data=str(instructions), max_seq_len=64, packing=False), tokenizer, chat)
    row = dataset[0]
    scored = row["labels"][row["labels"] != -100].tolist()
    assert start not in scored and row["input_ids"].tolist().count(start) == 2  # user + assistant headers
    lora = ["lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [qkv_proj]}", "max_duration=2ba"]
    trainer, _ = _run(_cfg(hf_base, instructions, tmp_path / "run", *lora))
    trainer.close()
    export_checkpoint(tmp_path / "run", tmp_path / "hf", 1 << 30)
    assert AutoTokenizer.from_pretrained(str(tmp_path / "hf")).chat_template == CHATML
    # An HF base is pinned too: once its weights change, neither export merges nor points the adapters at it.
    from safetensors.torch import load_file, save_file

    from llmfoundry_lite.finetune.peft_export import export_adapter

    export_adapter(tmp_path / "run", tmp_path / "adapter")  # unchanged: fine
    weights = load_file(hf_base / "model.safetensors")
    weights["model.embed_tokens.weight"][0, 0] += 1.0
    save_file(weights, hf_base / "model.safetensors", metadata={"format": "pt"})
    changed = rf"fine-tuned from base file {hf_base.resolve()} .*but base {hf_base.resolve()} now resolves to"
    with pytest.raises(ValueError, match=changed):
        export_adapter(tmp_path / "run", tmp_path / "adapter_changed")
    with pytest.raises(ValueError, match=changed):
        export_checkpoint(tmp_path / "run", tmp_path / "hf_changed", 1 << 30)


def _first_step_loss(base: Path, data: Path, world_size: int, global_batch: int) -> float:
    """The loss a LoRA run logs at step 0, computed here from the base alone (adapters start with B = 0):
    the token mean over the first global batch, each rank's rows dealt as Composer's sampler deals them."""
    import dataclasses

    from torch.utils.data import DistributedSampler

    from llmfoundry_lite.finetune.base import load_base
    from llmfoundry_lite.finetune.data import FinetuneDataset
    from llmfoundry_lite.models.loss import token_sum_loss

    cfg = load_config(FinetuneConfig, None, [f"base={base}", f"train_loader.data={data}", "train_loader.max_seq_len=64"])
    model, tokenizer = load_base(str(base))
    model.cfg = dataclasses.replace(model.cfg, doc_mask=True)  # packed rows: the trainer switches it on
    dataset = FinetuneDataset(cfg.train_loader, tokenizer, None)
    total, count = 0.0, 0
    with torch.no_grad():
        for rank in range(world_size):
            sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=cfg.train_loader.shuffle,
                                         seed=cfg.seed, drop_last=True)
            rows = [dataset[i] for i in list(sampler)[:global_batch // world_size]]
            batch = {k: torch.stack([torch.as_tensor(r[k]) for r in rows]) for k in rows[0]}
            loss_sum, tokens = token_sum_loss(model(batch["input_ids"], segment_ids_BT=batch["segment_ids"]),
                                              batch["labels"])
            total, count = total + float(loss_sum), count + int(tokens)
    return total / count


def _start_ranks(args: list[str], log: Path) -> subprocess.Popen:
    composer = Path(sys.executable).parent / "composer"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(composer), "-n", "2", *args], cwd=ROOT, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.mark.slow
def test_lora_under_fsdp2_resumes_from_a_sharded_checkpoint_after_sigkill(base_checkpoint, instructions, tmp_path,
                                                                           monkeypatch):
    """The sharded checkpoint holds adapters only; the resumed run re-reads the base (rank 0 alone) and must
    continue to exactly the per-step losses and adapters of an uninterrupted run."""
    from llmfoundry_lite.callbacks.metrics_file import read_metrics
    from llmfoundry_lite.models.checkpoint_io import iter_model_state, locate_checkpoint

    loss, steps = "loss/train/total", 10
    reads = tmp_path / "base_reads.log"
    monkeypatch.setenv("BASE_READS_LOG", str(reads))

    def args(save: Path) -> list[str]:
        return [RECORD_BASE_READS, f"base={base_checkpoint}", f"train_loader.data={instructions}",
                "train_loader.max_seq_len=64", f"save_folder={save}", "global_train_batch_size=4",
                f"max_duration={steps}ba", "save_interval=2ba", "scheduler.t_warmup=1ba", "optimizer.lr=3e-3",
                "loggers.wandb=null", "loggers.console_log_interval=1ba", "callbacks.speed_monitor.peak_flops=1e11",
                "lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [qkv_proj, o_proj]}",
                "fsdp_config={sharding_strategy: FULL_SHARD, state_dict_type: sharded}"]

    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    victim = _start_ranks(args(run_dir), tmp_path / "killed.log")
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and max(read_metrics(metrics, loss), default=-1) >= 3):
        assert victim.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)  # the whole job at once, as when a node dies
    victim.wait()
    assert max(read_metrics(metrics, loss)) < steps - 1, "the victim finished before the kill"
    assert (run_dir / "latest-rank0.pt").resolve().is_dir()  # a sharded (DCP) checkpoint
    resumed_from = int((run_dir / "latest-rank0.pt").resolve().name.split("-ba")[1])
    lines_before = len(metrics.read_text().splitlines())

    resumed = _start_ranks(args(run_dir), tmp_path / "resumed.log")
    assert resumed.wait(timeout=400) == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    reference = _start_ranks(args(ref_dir), tmp_path / "ref.log")
    assert reference.wait(timeout=400) == 0, (tmp_path / "ref.log").read_text()[-3000:]

    new_steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()[lines_before:] if loss in line]
    assert resumed_from >= 2 and new_steps == list(range(resumed_from, steps))  # resumed, did not restart
    ref_losses, run_losses = read_metrics(ref_dir / "metrics.jsonl", loss), read_metrics(metrics, loss)
    assert list(ref_losses) == list(range(steps))
    assert run_losses == ref_losses  # exact, every step
    assert ref_losses[steps - 1] < ref_losses[0]
    # Rank 1 never read the base, yet step 0 (the base alone) scores the global batch as the base does here.
    assert ref_losses[0] == pytest.approx(_first_step_loss(base_checkpoint, instructions, 2, 4), rel=1e-5)
    ref_ckpt, run_ckpt = locate_checkpoint(ref_dir), locate_checkpoint(run_dir)
    run_adapters = dict(iter_model_state(run_ckpt))
    ref_adapters = dict(iter_model_state(ref_ckpt))
    assert ref_adapters.keys() == run_adapters.keys() and all("lora_" in k for k in ref_adapters)
    for name, value in ref_adapters.items():
        assert torch.equal(value, run_adapters[name]), name
    # Three launches (victim, resumed, reference): each read the base on rank 0 only.
    base_file = (base_checkpoint / "latest-rank0.pt").resolve()
    assert reads.read_text().splitlines() == [f"0 {base_file}"] * 3


def test_the_base_is_pinned_and_resume_and_export_refuse_a_changed_one(base_checkpoint, tiny_shards, instructions,
                                                                      tmp_path, capsys):
    """A run records the checkpoint file its base folder resolved to and the sha256 of its weights; once the
    folder's newest checkpoint is another one (the base trained on), or the file is overwritten, resuming
    and exporting the LoRA run refuse, naming both; unchanged, both work."""
    from llmfoundry_lite.cli.export import export_checkpoint, main
    from llmfoundry_lite.finetune.load import load_model
    from llmfoundry_lite.training.config import TrainConfig
    from llmfoundry_lite.training.trainer import build_trainer

    base = tmp_path / "base"
    shutil.copytree(base_checkpoint, base, symlinks=True)
    recorded = (base / "latest-rank0.pt").resolve()
    lora = ["lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [qkv_proj]}", "eval_loader=null",
            "save_interval=1ba", "scheduler.name=constant_with_warmup"]
    trainer, _ = _run(_cfg(base, instructions, tmp_path / "run", *lora, "max_duration=2ba"))
    trainer.close()
    # Unchanged: export and resume work.
    export_checkpoint(tmp_path / "run", tmp_path / "hf", 1 << 30)
    trainer, _ = _run(_cfg(base, instructions, tmp_path / "run", *lora, "max_duration=3ba"))
    assert int(trainer.state.timestamp.batch) == 3
    trainer.close()

    def refused(name_now: Path) -> None:
        names = rf"fine-tuned from base file {recorded} \(weights sha256 [0-9a-f]{{16}}….*now resolves to {name_now}"
        with pytest.raises(ValueError, match=names):
            export_checkpoint(tmp_path / "run", tmp_path / "hf_changed", 1 << 30)
        with pytest.raises(ValueError, match=names):
            load_model(str(tmp_path / "run"))
        with pytest.raises(SystemExit) as exit_:
            main([str(tmp_path / "run"), "--output", str(tmp_path / "hf_cli")])
        assert exit_.value.code == 2 and f"error: {tmp_path / 'run'}" in capsys.readouterr().err
        with pytest.raises(ValueError, match=names + r".*Resume with base=" + str(recorded)):
            _run(_cfg(base, instructions, tmp_path / "run", *lora, "max_duration=4ba"))

    # The recorded file overwritten in place (same name, other weights).
    state = torch.load(recorded, map_location="cpu", weights_only=False)
    state["state"]["model"]["model.embed.weight"][0, 0] += 1.0
    torch.save(state, recorded)
    refused(recorded)
    shutil.copy2((base_checkpoint / "latest-rank0.pt").resolve(), recorded)  # back to the original weights
    # The base trained one more batch: its folder now resolves to a newer checkpoint.
    more = build_trainer(load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", tiny_overrides(
        tiny_shards, base, max_duration="3ba", eval_interval="3ba", save_interval="1ba")))
    more.fit()
    more.close()
    newer = (base / "latest-rank0.pt").resolve()
    assert newer != recorded and recorded.exists()
    refused(newer)
    # Pointed at the recorded file itself, the run resumes.
    trainer, _ = _run(_cfg(recorded, instructions, tmp_path / "run", *lora, "max_duration=4ba"))
    assert int(trainer.state.timestamp.batch) == 4
    trainer.close()
    # What the first run recorded: the file its folder resolved to (not the folder) and its weights' hash.
    from llmfoundry_lite.finetune.base import load_base, weights_sha256

    info = torch.load(tmp_path / "run" / "ep0-ba2-rank0.pt", map_location="cpu", weights_only=False)
    info = info["state"]["callbacks"]["FinetuneInfo"]
    assert info["base"] == str(base) and info["base_file"] == str(recorded)
    assert info["base_sha256"] == weights_sha256(load_base(str(recorded))[0])
