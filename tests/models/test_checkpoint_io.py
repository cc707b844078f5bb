"""Reading Composer checkpoints of both formats offline: the real thing, written by FSDP2 on 2 gloo ranks.

The session fixture launches this file under ``composer -n 2`` (see ``_train_and_save``): one
seeded 2-batch run saves a sharded checkpoint through Composer's CheckpointSaver, then the same
weights again in the full format, so both formats hold identical tensors by construction.
"""

import dataclasses
import gc
import json
import os
import re
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from tokenizers import Tokenizer

from llmfoundry_lite.cli.convert import convert_checkpoint
from llmfoundry_lite.cli.convert import main as convert_main
from llmfoundry_lite.cli.export import export_checkpoint
from llmfoundry_lite.cli.export import main as export_main
from llmfoundry_lite.models import checkpoint_io
from llmfoundry_lite.models.checkpoint_io import iter_transformer_tensors, locate_checkpoint, read_run_info
from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.hf_export import INDEX_NAME, WEIGHTS_NAME, hf_names
from llmfoundry_lite.models.load import load_for_inference
from llmfoundry_lite.models.transformer import Transformer
from tests.training.shards import ROOT, TOKENIZER_DIR, packed_samples, tiny_overrides

IDS = torch.tensor([Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json")).encode("def f(x):\n    return x\n").ids])


def _train_and_save(out: Path) -> None:
    """Rank body: code-tiny (test overrides) under FSDP2, 2 batches, sharded save; then a full save."""
    from composer import Trainer
    from composer.optim import DecoupledAdamW
    from composer.utils import dist, reproducibility
    from composer.utils.parallelism import FSDP2Config

    from llmfoundry_lite.callbacks.run_info import RunInfo
    from llmfoundry_lite.config import load_config
    from llmfoundry_lite.models.composer_model import ComposerDecoder
    from llmfoundry_lite.training.config import TrainConfig

    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", tiny_overrides(out / "unused", out / "sharded"))
    rows = torch.from_numpy(packed_samples(cfg.model.max_seq_len)[:8]).long()
    data = [{"input_ids": r, "labels": r} for r in rows]
    loader = torch.utils.data.DataLoader(data, batch_size=2, sampler=dist.get_sampler(data, shuffle=False))
    reproducibility.seed_all(17)  # every rank starts from the same weights
    model = ComposerDecoder(cfg.model)
    trainer = Trainer(model=model, train_dataloader=loader, max_duration="2ba", device="cpu", precision="fp32",
                      optimizers=DecoupledAdamW(model.parameters(), lr=1e-3), seed=17,
                      parallelism_config={"fsdp": FSDP2Config(state_dict_type="sharded")},
                      callbacks=[RunInfo(cfg.model, cfg.tokenizer)], save_folder=str(out / "sharded"),
                      save_interval="2ba", progress_bar=False, log_to_console=False)
    trainer.fit()
    trainer.state.fsdp_config.state_dict_type = "full"  # same state, Composer's other format
    trainer.save_checkpoint(str(out / "full" / "ep0-ba2-rank{rank}.pt"))
    if dist.get_global_rank() == 0:  # what CheckpointSaver does after a save
        (out / "full" / checkpoint_io.LATEST).symlink_to("ep0-ba2-rank0.pt")


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsdp2_run")
    # Loopback for gloo and one thread per rank: 2 ranks share a small CI machine.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FSDP_VERSION": "2", "GLOO_SOCKET_IFNAME": "lo",
           "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    composer = Path(sys.executable).parent / "composer"
    proc = subprocess.run([str(composer), "-n", "2", __file__, str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        out = model(IDS)
    return getattr(out, "logits", out)


@pytest.mark.slow
def test_both_formats_are_found_through_folders_and_symlinks(run):
    sharded = locate_checkpoint(run / "sharded")
    assert sharded == locate_checkpoint(run / "sharded" / checkpoint_io.LATEST)
    assert sharded.sharded and sharded.path == run / "sharded" / "ep0-ba2"
    assert sorted(p.name for p in sharded.path.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    full = locate_checkpoint(run / "full")
    assert not full.sharded and full.path == run / "full" / "ep0-ba2-rank0.pt"
    for ckpt in (sharded, full):
        info = read_run_info(ckpt)
        assert (info.model_cfg.d_model, info.model_cfg.n_layers, info.model_cfg.vocab_size) == (64, 2, 1024)
        assert info.tokenizer_json == (TOKENIZER_DIR / "tokenizer.json").read_text()


@pytest.mark.slow
def test_sharded_and_full_checkpoints_hold_identical_tensors(run):
    sharded = dict(iter_transformer_tensors(locate_checkpoint(run / "sharded")))
    full = dict(iter_transformer_tensors(locate_checkpoint(run / "full")))
    model_cfg = read_run_info(locate_checkpoint(run / "full")).model_cfg
    assert list(sharded) == list(full) == list(Transformer(model_cfg).state_dict())
    for name, t in sharded.items():
        assert torch.equal(t, full[name]), name


@pytest.mark.slow
def test_sharded_export_gives_transformers_our_logits(run, tmp_path):
    from transformers import AutoModelForCausalLM

    ours, _ = load_for_inference(str(run / "full"))
    from_sharded, _ = load_for_inference(str(run / "sharded"))
    torch.testing.assert_close(_logits(from_sharded), _logits(ours), atol=0.0, rtol=0.0)
    out, n_params = export_checkpoint(run / "sharded", tmp_path / "hf", max_shard_bytes=2 * 10**9)
    assert n_params == sum(p.numel() for p in ours.parameters())
    assert (out / WEIGHTS_NAME).is_file() and not (out / INDEX_NAME).exists()  # fits one file
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(_logits(hf), _logits(ours), atol=1e-5, rtol=0.0)


@pytest.mark.slow
def test_small_max_shard_size_writes_an_index_that_transformers_and_from_hf_load(run, tmp_path):
    from transformers import AutoModelForCausalLM

    limit, out = 300_000, tmp_path / "hf"  # embedding and head are 262 kB each: several files
    export_main([str(run / "sharded"), "--output", str(out), "--max-shard-size", "300KB", "--max-new-tokens", "4"])
    assert (out / "sample_generation.txt").read_text().startswith("def add(a, b):")
    index = json.loads((out / INDEX_NAME).read_text())
    files, n = sorted(set(index["weight_map"].values())), len(set(index["weight_map"].values()))
    assert n >= 3 and files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    assert sorted(p.name for p in out.glob("*.safetensors")) == files and not (out / WEIGHTS_NAME).exists()
    assert set(index["weight_map"]) == hf_names(read_run_info(locate_checkpoint(run / "sharded")).model_cfg)
    assert all((out / f).stat().st_size <= limit + 10_000 for f in files)  # + the safetensors header
    ours, _ = load_for_inference(str(run / "full"))
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(_logits(hf), _logits(ours), atol=1e-5, rtol=0.0)
    back, _ = load_for_inference(str(out))  # from_hf on the sharded layout
    torch.testing.assert_close(_logits(back), _logits(ours), atol=0.0, rtol=0.0)


@pytest.mark.slow
def test_converted_single_files_match_composers_own_full_checkpoint(run, tmp_path):
    composer_full = torch.load(run / "full" / "ep0-ba2-rank0.pt", weights_only=False)
    converted = convert_checkpoint(run / "sharded", tmp_path / "full.pt")
    convert_main([str(run / "sharded" / checkpoint_io.LATEST), "--output", str(tmp_path / "weights.pt"), "--weights-only"])
    weights = tmp_path / "weights.pt"
    stripped = convert_checkpoint(run / "full", tmp_path / "stripped.pt", weights_only=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.pt", "stripped.pt", "weights.pt"]  # no staging left
    saved = torch.load(converted, weights_only=False)
    assert set(saved) == {"state", "rng"} and len(saved["rng"]) == 2
    ours_opt, composer_opt = saved["state"]["optimizers"]["DecoupledAdamW"], composer_full["state"]["optimizers"]["DecoupledAdamW"]
    torch.testing.assert_close(saved["state"]["model"], composer_full["state"]["model"], atol=0.0, rtol=0.0)
    torch.testing.assert_close(ours_opt["state"], composer_opt["state"], atol=0.0, rtol=0.0)
    assert ours_opt["param_groups"] == composer_opt["param_groups"]
    assert saved["state"]["callbacks"]["RunInfo"] == composer_full["state"]["callbacks"]["RunInfo"]
    # The full save came after fit() closed the epoch: same batch, epoch counter one further.
    assert saved["state"]["timestamp"]["Timestamp"]["batch"] == composer_full["state"]["timestamp"]["Timestamp"]["batch"] == 2
    ours = _logits(load_for_inference(str(run / "full"))[0])
    for path in (converted, weights, stripped):
        small = torch.load(path, weights_only=False)
        if path != converted:
            assert list(small) == ["state"] and sorted(small["state"]) == ["callbacks", "model"]
            assert list(small["state"]["callbacks"]) == ["RunInfo"]
        torch.testing.assert_close(_logits(load_for_inference(str(path))[0]), ours, atol=0.0, rtol=0.0)
    out, _ = export_checkpoint(weights, tmp_path / "hf", max_shard_bytes=10**9)
    assert (out / WEIGHTS_NAME).is_file()


@pytest.mark.slow
def test_reader_holds_one_tensor_at_a_time(run, monkeypatch):
    yielded: list[weakref.ref] = []
    loads: list[tuple[int, int]] = []  # (tensors requested, earlier tensors still alive) per dcp.load
    real_load = dcp.load

    def counting_load(state, **kwargs):
        tensors = sum(isinstance(v, torch.Tensor) for v in state.values())
        loads.append((tensors, sum(r() is not None for r in yielded)))
        return real_load(state, **kwargs)

    monkeypatch.setattr(dcp, "load", counting_load)
    gc.disable()  # a tensor kept alive by a reference cycle must show, not be collected by chance
    try:
        for _, t in iter_transformer_tensors(locate_checkpoint(run / "sharded")):
            yielded.append(weakref.ref(t))
            del t
    finally:
        gc.enable()
    assert len(yielded) == 15 and len(loads) == 15
    assert loads == [(1, 0)] * 15  # one tensor per read, and nothing the consumer dropped is kept


@pytest.mark.slow
def test_full_format_tensors_are_memory_mapped(run, monkeypatch):
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    assert len(list(iter_transformer_tensors(locate_checkpoint(run / "full")))) == 15
    assert calls and all(kw.get("mmap") is True for kw in calls)


def _hand_made_dcp(folder: Path, cfg: ModelConfig, run_info: bool = True) -> Transformer:
    """A sharded checkpoint with Composer's key layout, written in this process."""
    torch.manual_seed(3)
    model = Transformer(cfg).eval()
    state: dict = {"model": {f"model.{k}": v for k, v in model.state_dict().items()}}
    if run_info:
        state["callbacks"] = {"RunInfo": {"model_config": dataclasses.asdict(cfg),
                                          "tokenizer_json": (TOKENIZER_DIR / "tokenizer.json").read_text()}}
    dcp.save({"state": state}, checkpoint_id=folder, no_dist=True)
    return model


def test_tied_embeddings_export_from_a_sharded_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=1024, max_seq_len=64,
                      tie_embeddings=True)
    model = _hand_made_dcp(tmp_path / "ckpt", cfg)
    loaded, _ = load_for_inference(str(tmp_path / "ckpt"))
    assert loaded.lm_head.weight is loaded.embed.weight
    torch.testing.assert_close(_logits(loaded), _logits(model), atol=0.0, rtol=0.0)
    out, _ = export_checkpoint(tmp_path / "ckpt", tmp_path / "hf", max_shard_bytes=100_000)
    assert "lm_head.weight" not in json.loads((out / INDEX_NAME).read_text())["weight_map"]
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(out).eval()), _logits(model),
                               atol=1e-5, rtol=0.0)


def test_unreadable_paths_fail_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"no checkpoint at {tmp_path / 'nope'}")):
        locate_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty is not a checkpoint: no latest-rank0.pt"):
        locate_checkpoint(tmp_path / "empty")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "__0_0.distcp").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="half holds .distcp shards but no .metadata"):
        load_for_inference(str(tmp_path / "half"))
    (tmp_path / "dangling.pt").symlink_to(tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match="dangling symlink"):
        locate_checkpoint(tmp_path / "dangling.pt")
    (tmp_path / "junk.pt").write_text("not a zip")
    with pytest.raises(ValueError, match="junk.pt is not a Composer checkpoint"):
        read_run_info(locate_checkpoint(tmp_path / "junk.pt"))


def test_checkpoint_without_run_info_is_refused(tmp_path):
    cfg = ModelConfig(d_model=64, n_layers=1, n_heads=4, vocab_size=1024, max_seq_len=64)
    _hand_made_dcp(tmp_path / "bare", cfg, run_info=False)
    for call in (lambda: load_for_inference(str(tmp_path / "bare")),
                 lambda: export_checkpoint(tmp_path / "bare", tmp_path / "hf", 10**9),
                 lambda: convert_checkpoint(tmp_path / "bare", tmp_path / "out.pt", weights_only=True)):
        with pytest.raises(ValueError, match="bare carries no RunInfo"):
            call()
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "hf").exists()
    with pytest.raises(ValueError, match="would overwrite or sit inside the checkpoint"):
        convert_checkpoint(tmp_path / "bare", tmp_path / "bare" / "out.pt")
    torch.save({"state": {}}, tmp_path / "single.pt")
    with pytest.raises(ValueError, match="single.pt is already a single-file checkpoint; pass --weights-only"):
        convert_checkpoint(tmp_path / "single.pt", tmp_path / "out.pt")


if __name__ == "__main__":
    _train_and_save(Path(sys.argv[1]))
