"""Shared fixtures: one sandbox with short limits, the HumanEval problems, a tiny random model."""

from __future__ import annotations

from pathlib import Path

import pytest

TOKENIZER_DIR = Path(__file__).parents[1] / "assets" / "tokenizer"

@pytest.fixture(scope="session")
def tiny_model_and_tokenizer():
    """A random 2-layer decoder over the committed test tokenizer (untrained: output is noise)."""
    import torch
    from tokenizers import Tokenizer

    from llmfoundry_lite.models.config import ModelConfig
    from llmfoundry_lite.models.transformer import Transformer

    torch.set_num_threads(1)  # tiny matrices: thread start-up would dominate on a busy machine
    tokenizer = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=tokenizer.get_vocab_size(), max_seq_len=512)
    return Transformer(cfg).eval(), tokenizer


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model_and_tokenizer) -> Path:
    """The tiny model saved the way train.py's checkpoints hold it: Composer state + the RunInfo
    callback's record (model config, tokenizer JSON), written directly to keep composer unimported."""
    import dataclasses

    import torch

    model, _ = tiny_model_and_tokenizer
    run_info = {"model_config": dataclasses.asdict(model.cfg), "tokenizer_json": (TOKENIZER_DIR / "tokenizer.json").read_text()}
    state = {
        "model": {f"model.{name}": tensor for name, tensor in model.state_dict().items()},
        "callbacks": {"RunInfo": run_info},
    }
    path = tmp_path_factory.mktemp("tiny_ckpt") / "latest-rank0.pt"
    torch.save({"state": state}, path)
    return path
