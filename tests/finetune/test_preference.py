"""DPO and KTO: the losses against the papers' formulas (and trl's), preference rows, the reference pass run
once, and preference tuning end to end on CPU from a tiny pretrained checkpoint."""

import json
import math
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.finetune.config import FinetuneConfig
from llmfoundry_lite.finetune.data import FinetuneDataConfig
from llmfoundry_lite.finetune.preference import dpo_loss, kto_loss, sequence_logps
from llmfoundry_lite.finetune.preference_data import PreferenceDataset, count_items
from llmfoundry_lite.models.loss import IGNORE_INDEX
from tests.training.shards import ROOT, TOKENIZER_DIR

RULE = {" if": " None", " for": " self", " and": " in"}
"""The synthetic preference: a prompt's last word decides the continuation users accept."""
NAMES, FUNCS = list("abcdefghijklmnopqrstuvwxyz"), ["foo", "bar", "len", "print", "dict", "make", "load", "run"]


def synthetic_pairs(n: int, seed: int) -> list[dict]:
    """Pairs whose chosen continuation follows ``RULE`` and whose rejected one is another cue's (every
    ordered pair of continuations about equally often, so a model without the rule is right half the time)."""
    rng, cues = random.Random(seed), sorted(RULE)
    rows = []
    for _ in range(n):
        cue = rng.choice(cues)
        wrong = RULE[rng.choice([c for c in cues if c != cue])]
        prompt = f"{rng.choice(NAMES)}{rng.randrange(100)} = {rng.choice(FUNCS)}({rng.randrange(1000)})  #{cue}"
        rows.append({"prompt": prompt, "chosen": RULE[cue], "rejected": wrong})
    return rows


def write_jsonl(path: Path, rows: list, extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra)
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """(train, held-out) JSONL files of ``synthetic_pairs``; no held-out prompt is a training prompt."""
    folder = tmp_path_factory.mktemp("pref")
    train, heldout = synthetic_pairs(192, seed=0), synthetic_pairs(64, seed=1)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in heldout}
    return write_jsonl(folder / "train.jsonl", train), write_jsonl(folder / "heldout.jsonl", heldout)


LORA = "lora={r: 8, alpha: 16, dropout: 0.0, target_modules: [qkv_proj, o_proj, gate_up_proj, down_proj]}"


def _cfg(base, train, heldout, save, *extra) -> FinetuneConfig:
    return load_config(FinetuneConfig, None, [
        f"base={base}", "objective=dpo", f"train_loader={{data: {train}, max_seq_len: 64, packing: false}}",
        f"eval_loader={{data: {heldout}, max_seq_len: 64, packing: false}}", f"save_folder={save}",
        "global_train_batch_size=16", "device_eval_batch_size=32", "max_duration=12ba", "eval_interval=100ba",
        "save_interval=100ba", "scheduler.t_warmup=2ba", "optimizer.lr=1e-2", "loggers.wandb=null",
        "loggers.console_log_interval=4ba", "callbacks.speed_monitor.peak_flops=1e11", LORA, *extra])


def _run(cfg):
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer, finetune

    trainer = build_finetune_trainer(cfg)
    return trainer, finetune(trainer, cfg)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_dpo_loss_is_the_papers_formula():
    pc, pr, rc, rr = [-3.0, -7.5, -2.0, -4.0], [-5.0, -6.0, -2.0, -1.0], [-4.0, -7.0, -2.5, -4.0], [-4.5, -6.5, -2.5, -1.0]
    beta = 0.25
    got = dpo_loss(*(torch.tensor(v) for v in (pc, pr, rc, rr)), beta)
    for i in range(4):  # -log σ(β[(π_c − r_c) − (π_r − r_r)])
        assert float(got["loss"][i]) == pytest.approx(-math.log(_sigmoid(beta * ((pc[i] - rc[i]) - (pr[i] - rr[i])))))
    assert got["chosen_reward"].tolist() == pytest.approx([0.25, -0.125, 0.125, 0.0])
    assert got["rejected_reward"].tolist() == pytest.approx([-0.125, 0.125, 0.125, 0.0])
    assert got["reward_margin"].tolist() == pytest.approx([0.375, -0.25, 0.0, 0.0])
    assert got["reward_accuracy"].tolist() == [1.0, 0.0, 0.5, 0.5]  # a tie (policy = reference) counts one half
    assert got["choice_accuracy"].tolist() == [1.0, 0.0, 0.5, 0.0]  # the policy's own ranking, π_c > π_r


def test_kto_loss_is_the_papers_formula_with_a_detached_clamped_reference_point():
    policy, ref = [-2.0, -5.0, -3.0, -4.0], [-2.5, -4.0, -3.0, -4.5]
    desirable = [True, False, True, False]
    kl_policy, kl_ref = [-6.0, -7.0, -5.0, -8.0], [-6.5, -7.2, -5.4, -7.9]
    beta, wd, wu = 0.5, 1.5, 0.75
    z0 = max(0.0, sum(p - r for p, r in zip(kl_policy, kl_ref, strict=True)) / 4)  # 0.225
    kl_p = torch.tensor(kl_policy, requires_grad=True)
    got = kto_loss(torch.tensor(policy), torch.tensor(ref), torch.tensor(desirable), kl_p, torch.tensor(kl_ref),
                   beta, wd, wu)
    for i in range(4):  # λ_y − v(x, y): λ_D σ(β(r − z0)) desirable, λ_U σ(β(z0 − r)) undesirable
        r = policy[i] - ref[i]
        v = wd * _sigmoid(beta * (r - z0)) if desirable[i] else wu * _sigmoid(beta * (z0 - r))
        assert float(got["loss"][i]) == pytest.approx((wd if desirable[i] else wu) - v)
    assert got["kl"].tolist() == pytest.approx([z0] * 4)
    assert got["reward"].tolist() == pytest.approx([0.25, -0.5, 0.0, 0.25])
    assert got["reward_accuracy"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert not got["loss"].requires_grad or got["loss"].grad_fn is not None
    assert kl_p.grad is None and not got["kl"].requires_grad  # z0 is not back-propagated
    below = kto_loss(torch.tensor(policy), torch.tensor(ref), torch.tensor(desirable), torch.tensor(kl_ref),
                     torch.tensor(kl_policy), beta)
    assert below["kl"].tolist() == [0.0] * 4  # a negative estimate is clamped at 0


def test_sequence_logps_sums_the_labelled_tokens_with_the_training_shift():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, 6], [IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX, 2]])
    logp = logits.log_softmax(-1)
    expected = [logp[0, 1, 3] + logp[0, 2, 4] + logp[0, 3, 6], logp[1, 0, 1] + logp[1, 3, 2]]
    assert sequence_logps(logits, labels).tolist() == pytest.approx([float(e) for e in expected])


def _tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))


def test_rows_are_encoded_completion_style_and_every_drop_is_counted(tmp_path):
    tok = _tokenizer()
    good = {"prompt": "def add(a, b):\n", "chosen": "    return a + b\n", "rejected": "    return a - b"}
    bad = [[1, 2], {"prompt": "x"}, {"prompt": 3, "chosen": "a", "rejected": "b"}, {"prompt": "x", "chosen": "", "rejected": "b"},
           {"prompt": "x", "chosen": "a", "rejected": "a"}, {"prompt": "x", "completion": "a", "label": True},
           {"prompt": "x " * 80, "chosen": "a", "rejected": "b"}]
    path = write_jsonl(tmp_path / "rows.jsonl", [good, *bad], "\n{broken\n")
    data = PreferenceDataset(FinetuneDataConfig(data=str(path), max_seq_len=64, packing=False), tok, "dpo")
    assert data.summary()["dropped_by_reason"] == {
        "blank_line": 1, "not_json": 1, "not_an_object": 1, "missing_keys": 1, "not_a_string": 1, "empty_completion": 1,
        "identical_pair": 1, "unpaired_for_dpo": 1, "too_long": 1}
    assert data.rows_read == 10 and len(data) == 1
    data.reference = torch.tensor([[-1.0, -2.0]])
    item = data[0]
    prompt = tok.encode(good["prompt"], add_special_tokens=False).ids  # raw, no template, no specials
    for row, text in enumerate((good["chosen"], good["rejected"])):
        cont = tok.encode(text, add_special_tokens=False).ids  # directly after the prompt, no end-of-text
        n = len(prompt) + len(cont)
        assert item["input_ids"][row, :n].tolist() == prompt + cont
        assert item["labels"][row, :n].tolist() == [IGNORE_INDEX] * len(prompt) + cont
        assert item["segment_ids"][row].tolist() == [1] * n + [0] * (item["input_ids"].shape[1] - n)
    batch = data.collate([item, item])
    assert batch["input_ids"].shape == (2, 2, item["input_ids"].shape[1]) and batch["ref_logps"].shape == (2, 2)
    assert count_items(batch) == {"total": 2 * int(item["segment_ids"].sum()), "loss_generating": 2}
    # truncate_prompt: the prompt's start is cut, the same for both continuations, the continuations kept whole.
    long = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "x = 1\n" * 20, "chosen": " a", "rejected": " bb + cc"}])
    cut = PreferenceDataset(FinetuneDataConfig(data=str(long), max_seq_len=16, packing=False, truncation="truncate_prompt"),
                            tok, "dpo")
    chosen, rejected = cut.items[0].seqs
    assert len(rejected.ids) == 16 and chosen.ids[: chosen.start] == rejected.ids[: rejected.start]
    assert list(rejected.ids[rejected.start :]) == tok.encode(" bb + cc", add_special_tokens=False).ids


def test_kto_items_pair_each_completion_with_another_rows_completion(tmp_path):
    rows = [{"prompt": "a = ", "chosen": "1", "rejected": "2"}, {"prompt": "b = ", "completion": "3", "label": False},
            {"prompt": "c = ", "completion": "4", "label": "yes"}]
    path = write_jsonl(tmp_path / "kto.jsonl", rows)
    data = PreferenceDataset(FinetuneDataConfig(data=str(path), max_seq_len=32, packing=False), _tokenizer(), "kto")
    assert data.summary()["dropped_by_reason"] == {"not_a_bool": 1}
    assert (data.summary()["desirable"], data.summary()["undesirable"]) == (1, 2)  # the pair became two rows
    decode = _tokenizer().decode
    texts = [(decode(list(s.ids[: s.start])), decode(list(s.ids[s.start :]))) for item in data.items for s in item.seqs]
    mains, companions = texts[0::2], texts[1::2]
    assert sorted(mains) == [("a = ", "1"), ("a = ", "2"), ("b = ", "3")]
    for (prompt, completion), (kl_prompt, kl_completion) in zip(mains, companions, strict=True):
        assert kl_prompt == prompt and kl_completion != completion  # same prompt, another row's completion
    assert sorted(c for _, c in companions) == ["1", "2", "3"]  # each completion used once


def test_config_rejects_typos_and_misuse_by_name():
    base = ["base=b", "train_loader={data: x.jsonl, packing: false}"]
    with pytest.raises(ConfigError, match=r"preference.betta.*valid keys of preference: beta, desirable_weight"):
        load_config(FinetuneConfig, None, [*base, "objective=dpo", "preference.betta=0.2"])
    with pytest.raises(ConfigError, match=r"unknown objective 'dpoo'; choose from \['sft', 'dpo', 'kto'\]"):
        load_config(FinetuneConfig, None, [*base, "objective=dpoo"])
    with pytest.raises(ConfigError, match=r"preference.beta must be positive, got 0.0"):
        load_config(FinetuneConfig, None, [*base, "objective=dpo", "preference.beta=0"])
    with pytest.raises(ConfigError, match=r"train_loader.packing: false"):
        load_config(FinetuneConfig, None, ["base=b", "train_loader.data=x.jsonl", "objective=kto"])
    cfg = load_config(FinetuneConfig, None, ["base=b", "train_loader.data=x.jsonl"])
    assert cfg.objective == "sft" and cfg.preference.beta == 0.1  # the default: instruction tuning as before


def test_dpo_raises_heldout_preference_accuracy_above_0_9(base_checkpoint, synthetic, tmp_path):
    trainer, summary = _run(_cfg(base_checkpoint, *synthetic, tmp_path / "run"))
    trainer.close()
    before, after = summary["heldout_before"], summary["heldout_after"]
    assert before["reward_accuracy"] == 0.5 and before["loss"] == pytest.approx(math.log(2))  # policy = reference
    assert 0.3 <= before["choice_accuracy"] <= 0.7  # the base does not know the rule
    assert after["reward_accuracy"] > 0.9 and after["choice_accuracy"] > 0.9
    assert after["loss"] < before["loss"] and after["reward_margin"] > 0
    assert summary["batches"] == 12 and summary["samples_by_stream"] == {"finetune": 12 * 16}


def test_kto_on_unpaired_rows_raises_heldout_reward_accuracy(base_checkpoint, synthetic, tmp_path):
    def unpaired(path: Path) -> Path:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return write_jsonl(tmp_path / path.name, [{"prompt": r["prompt"], "completion": r[k], "label": k == "chosen"}
                                                   for r in rows for k in ("chosen", "rejected")])

    trainer, summary = _run(_cfg(base_checkpoint, *(unpaired(p) for p in synthetic), tmp_path / "run", "objective=kto"))
    trainer.close()
    before, after = summary["heldout_before"], summary["heldout_after"]
    assert before == {"kl": 0.0, "loss": 0.5, "reward": 0.0, "reward_accuracy": 0.5}  # λ(1 − σ(0)), every r = z0 = 0
    assert after["reward_accuracy"] > 0.9 and after["loss"] < 0.5 and after["kl"] >= 0.0
    assert summary["samples_by_stream"] == {"finetune": 12 * 16}  # completions, not pairs


def _item_logps(model, dataset: PreferenceDataset) -> torch.Tensor:
    """(N, 2): both sequences' summed log-probs of every item under ``model``, 64 items per forward."""
    out = []
    with torch.no_grad():
        for start in range(0, len(dataset), 64):
            batch = dataset.collate([dataset.tensors(i) for i in range(start, min(start + 64, len(dataset)))])
            B, _, T = batch["input_ids"].shape
            out.append(sequence_logps(model(batch["input_ids"].view(2 * B, T)), batch["labels"].view(2 * B, T)).view(B, 2))
    return torch.cat(out)


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_the_reference_pass_runs_once_and_scores_the_base(base_checkpoint, synthetic, tmp_path, monkeypatch, lora):
    """Before training, one forward per batch of items (no gradient); in training, one forward per step (chosen
    and rejected together), none of them the reference; the cached log-probs equal the base's own, and a
    second run reads them from the cache without a reference forward."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from llmfoundry_lite.finetune.base import load_base
    from llmfoundry_lite.finetune.preference import adapters_disabled
    from llmfoundry_lite.finetune.trainer import build_finetune_trainer, finetune
    from llmfoundry_lite.models.transformer import Transformer

    calls = []
    forward = Transformer.forward

    def counted(self, *args, **kwargs):
        off = any(m.disable_adapters for m in self.modules() if isinstance(m, BaseTunerLayer))
        calls.append((torch.is_grad_enabled(), off))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(Transformer, "forward", counted)
    extra = ["max_duration=3ba", "eval_loader=null", "preference.reference_cache=" + str(tmp_path / "cache"),
             *([] if lora else ["lora=null", "optimizer.lr=1e-4"])]
    cfg = _cfg(base_checkpoint, *synthetic, tmp_path / "run", *extra)
    trainer = build_finetune_trainer(cfg)
    dataset = trainer.state.train_dataloader.dataset
    assert calls == [(False, lora)] * math.ceil(len(dataset) / 32)  # device_eval_batch_size items per forward
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    base, _ = load_base(str(base_checkpoint))
    assert torch.allclose(dataset.reference, _item_logps(base.eval(), dataset), atol=1e-4)
    calls.clear()
    finetune(trainer, cfg)
    assert calls == [(True, False)] * 3  # the policy alone: 3 steps, one forward each
    model = trainer.state.model.model.eval()
    tuned = _item_logps(model, dataset)
    assert not torch.allclose(tuned, dataset.reference, atol=1e-3)  # training moved the policy
    if lora:  # adapters off, the trained policy is the base again
        with adapters_disabled(model):
            assert torch.allclose(_item_logps(model, dataset), dataset.reference, atol=1e-4)
    trainer.close()
    calls.clear()
    again = build_finetune_trainer(_cfg(base_checkpoint, *synthetic, tmp_path / "again", *extra))
    assert calls == []  # read from the cache
    assert torch.equal(again.state.train_dataloader.dataset.reference, dataset.reference)
    again.close()


def test_the_dpo_yaml_trains_lora_from_a_checkpoint_and_saves_the_adapter(base_checkpoint, synthetic, tmp_path, capsys):
    """``train.py yamls/finetune/code-tiny-dpo.yaml`` in-process: the loss falls from log 2, the checkpoint holds
    the adapters alone and loads merged into a model that prefers the held-out chosen continuations."""
    from llmfoundry_lite.callbacks.metrics_file import read_metrics
    from llmfoundry_lite.cli.train import main
    from llmfoundry_lite.finetune.load import load_model

    train, heldout = synthetic
    save = tmp_path / "dpo"
    main([str(ROOT / "yamls/finetune/code-tiny-dpo.yaml"), f"base={base_checkpoint}", f"train_loader.data={train}",
          f"eval_loader.data={heldout}", "train_loader.max_seq_len=64", "eval_loader.max_seq_len=64",
          f"save_folder={save}", "global_train_batch_size=16", "max_duration=8ba", "save_interval=8ba",
          "eval_interval=8ba", "scheduler.t_warmup=1ba", "optimizer.lr=1e-2", "loggers.console_log_interval=2ba",
          "callbacks.speed_monitor.peak_flops=1e11", f"preference.reference_cache={tmp_path / 'cache'}"])
    out = capsys.readouterr().out
    assert "train_loader: 192 rows -> 192 pairs" in out and "computed in one pass of the base" in out
    losses = read_metrics(save / "metrics.jsonl", "loss/train/total")
    assert losses[0] == pytest.approx(math.log(2), abs=1e-5)  # adapters start at B = 0: policy = reference
    assert losses[max(losses)] < losses[0] - 0.02
    ckpt = torch.load(save / "latest-rank0.pt", map_location="cpu", weights_only=False)
    assert ckpt["state"]["model"] and all("lora_" in k for k in ckpt["state"]["model"])
    summary = json.loads((save / "train_summary.json").read_text())
    assert summary["objective"] == "dpo" and summary["heldout_after"]["reward_accuracy"] > 0.5
    merged, tokenizer = load_model(str(save))
    data = PreferenceDataset(FinetuneDataConfig(data=str(heldout), max_seq_len=64, packing=False), tokenizer, "dpo")
    logps = _item_logps(merged, data)
    assert float((logps[:, 0] > logps[:, 1]).float().mean()) == pytest.approx(
        summary["heldout_after"]["choice_accuracy"])


TRL_ROWS = [{"prompt": "def add(a, b):\n", "chosen": "    return a + b\n", "rejected": "    return a - b\n"},
            {"prompt": "x = [", "chosen": "1, 2]", "rejected": "1, 2)"},
            {"prompt": "for i in", "chosen": " range(3):", "rejected": " rang"},
            {"prompt": "import", "chosen": " os", "rejected": " os os os os"}]


def _trl_models():
    """(HF tokenizer, policy, reference): two differently seeded tiny Llamas over the test tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128)
    models = []
    for seed in (0, 3):  # seed 3: the mismatched pairs' mean log-ratio is positive, so KTO's z0 is not clamped to 0
        torch.manual_seed(seed)
        models.append(LlamaForCausalLM(config).eval())
    return tokenizer, *models


def _hf_logps(model, ids: torch.Tensor, attention: torch.Tensor, completion: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits
    return sequence_logps(logits, ids.masked_fill(completion == 0, IGNORE_INDEX))


def test_dpo_and_kto_losses_equal_trls_on_the_same_batch(tmp_path):
    """trl's DPOTrainer and KTOTrainer compute their loss on a batch they tokenized; ours, from the same tensors
    (our per-sequence log-probs of both models and our loss functions), is the same number."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    tokenizer, policy, ref = _trl_models()
    common = {"output_dir": str(tmp_path), "report_to": "none", "use_cpu": True, "bf16": False, "max_length": None}
    dpo = DPOTrainer(model=policy, ref_model=ref, args=DPOConfig(per_device_train_batch_size=4, beta=0.3, **common),
                     train_dataset=Dataset.from_list(TRL_ROWS), processing_class=tokenizer)
    batch = next(iter(dpo.get_train_dataloader()))  # the chosen sequences, then the rejected ones
    seqs = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    (pc, pr), (rc, rr) = _hf_logps(policy, *seqs).chunk(2), _hf_logps(ref, *seqs).chunk(2)
    trl_loss = float(dpo.compute_loss(dpo.model, batch))
    assert trl_loss == pytest.approx(float(dpo_loss(pc, pr, rc, rr, 0.3)["loss"].mean()), rel=1e-5)
    assert abs(trl_loss - math.log(2)) > 1e-3  # the two models differ: not the trivial value

    rows = [{"prompt": r["prompt"], "completion": r[k], "label": k == "chosen"} for r in TRL_ROWS
            for k in ("chosen", "rejected")]
    kto = KTOTrainer(model=policy, ref_model=ref, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                     args=KTOConfig(per_device_train_batch_size=8, beta=0.3, desirable_weight=1.2,
                                    undesirable_weight=0.8, **common))
    b = next(iter(kto.get_train_dataloader()))
    main = (b["input_ids"], b["attention_mask"], b["completion_mask"])
    kl = (b["KL_input_ids"], b["KL_attention_mask"], b["KL_completion_mask"])
    ours = kto_loss(_hf_logps(policy, *main), _hf_logps(ref, *main), b["label"].bool(), _hf_logps(policy, *kl),
                    _hf_logps(ref, *kl), 0.3, 1.2, 0.8)
    assert float(ours["kl"][0]) > 0.05  # the reference point is in play
    assert float(kto.compute_loss(kto.model, b)) == pytest.approx(float(ours["loss"].mean()), rel=1e-5)


def test_on_two_ranks_each_item_is_scored_once_and_matches_one_process(base_checkpoint, synthetic, tmp_path):
    """``composer -n 2``: each rank scores half the items, the sum over ranks is every item's log-probs exactly
    once (the cache file holds them), and DPO trains on both ranks."""
    from llmfoundry_lite.finetune.base import load_base
    from tests.training.shards import launch_ranks

    train, heldout = synthetic
    proc = launch_ranks(2, ["train.py", str(ROOT / "yamls/finetune/code-tiny-dpo.yaml"), f"base={base_checkpoint}",
                            f"train_loader.data={train}", "eval_loader=null", "train_loader.max_seq_len=64",
                            f"save_folder={tmp_path / 'run'}", "global_train_batch_size=16", "max_duration=2ba",
                            "save_interval=2ba", "loggers.wandb=null", "callbacks.speed_monitor.peak_flops=1e11",
                            f"preference.reference_cache={tmp_path / 'cache'}"])
    assert "train_loader: reference log-probs of 192 items computed" in proc.stdout
    cached = torch.load(next((tmp_path / "cache").glob("*.pt")), weights_only=True)
    base, tokenizer = load_base(str(base_checkpoint))
    data = PreferenceDataset(FinetuneDataConfig(data=str(train), max_seq_len=64, packing=False), tokenizer, "dpo")
    assert torch.allclose(cached, _item_logps(base.eval(), data), atol=1e-4)
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["samples_by_stream"] == {"finetune": 32}
