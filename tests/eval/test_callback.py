"""HumanEvalCallback: runs every N batches on rank 0, logs pass@k, leaves the model as it found it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llmfoundry_lite.config import ConfigError
from llmfoundry_lite.eval.callback import HumanEvalCallback, unwrap
from tests.eval.conftest import TOKENIZER_DIR


class RecordingLogger:
    def __init__(self) -> None:
        self.logged: list[dict[str, float]] = []

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.logged.append(metrics)


def fake_state(batch: int, model, callbacks=()):
    from composer.core import Time, Timestamp

    wrapper = SimpleNamespace(model=model)  # stands in for ComposerDecoder: the decoder sits at .model
    return SimpleNamespace(timestamp=Timestamp(batch=Time.from_batch(batch)), model=wrapper, callbacks=list(callbacks))


def test_options_are_validated_like_yaml():
    with pytest.raises(ConfigError, match="unknown config key 'every_n_batchez'"):
        HumanEvalCallback(every_n_batchez=3)
    with pytest.raises(ConfigError, match=r"humaneval.k=\[1, 5\] has values above humaneval.n_samples=2"):
        HumanEvalCallback(n_samples=2, k=[1, 5])


def test_runs_every_n_batches_and_logs_pass_at_k(tiny_model_and_tokenizer):
    model, _ = tiny_model_and_tokenizer
    cb = HumanEvalCallback(tokenizer=str(TOKENIZER_DIR), every_n_batches=2, n_problems=2, n_samples=2, k=[1, 2],
                           max_new_tokens=6, temperature=0.8, workers=2,
                           sandbox={"timeout": 2.0})  # fmt: skip
    logger = RecordingLogger()
    model.train()
    for batch in range(5):
        cb.batch_end(fake_state(batch, model), logger)
    assert [b for b, _ in cb.history] == [2, 4]
    assert len(logger.logged) == 2
    assert set(logger.logged[0]) == {"humaneval/pass@1", "humaneval/pass@2", "humaneval/seconds", "humaneval/samples",
                                  "humaneval/errors"}
    assert logger.logged[0]["humaneval/samples"] == 4  # 2 problems x 2 samples, all on this (only) rank
    assert logger.logged[0]["humaneval/pass@1"] == 0.0  # an untrained model solves nothing
    assert model.training  # generation switched to eval mode and back
    model.eval()


def test_languages_are_scored_apart_with_their_own_toolchain(tiny_model_and_tokenizer):
    model, _ = tiny_model_and_tokenizer
    cb = HumanEvalCallback(tokenizer=str(TOKENIZER_DIR), every_n_batches=1, n_problems=2, n_samples=1, k=[1],
                           max_new_tokens=6, workers=2, languages=["python", "js"], sandbox={"timeout": 5.0})
    logger = RecordingLogger()
    cb.batch_end(fake_state(1, model), logger)
    logged = logger.logged[0]
    assert logged["humaneval/js/problems"] == 2 and logged["humaneval/js/samples"] == 2  # both translate
    assert logged["humaneval/samples"] == 2 and logged["humaneval/js/pass@1"] == 0.0
    results = cb.sample_and_run(model, cb._tokenizer, cb.problems_of("js"), "js")
    assert {r["task_id"] for r in results} == {"HumanEval/0", "HumanEval/1"}
    assert all(r["result"].startswith("failed") for r in results)  # ran as JavaScript, judged, not a harness error
    with pytest.raises(ConfigError, match=r"humaneval.languages=\['python', 'ruby'\]"):
        HumanEvalCallback(languages=["python", "ruby"])


def test_tokenizer_comes_from_run_info_by_default(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    run_info = SimpleNamespace(tokenizer_json=(TOKENIZER_DIR / "tokenizer.json").read_text())
    cb = HumanEvalCallback(every_n_batches=1, n_problems=1, max_new_tokens=4)
    assert cb._tokenizer_for(fake_state(1, model, [object(), run_info])).get_vocab() == tok.get_vocab()
    with pytest.raises(ValueError, match="needs a tokenizer"):
        HumanEvalCallback()._tokenizer_for(fake_state(1, model))


def test_unwrap_reaches_the_decoder_through_ddp_and_composer(tiny_model_and_tokenizer):
    model, _ = tiny_model_and_tokenizer
    ddp_like = SimpleNamespace(module=SimpleNamespace(model=model))
    assert unwrap(ddp_like) is model and unwrap(model) is model


def test_problems_split_round_robin_over_ranks():
    from llmfoundry_lite.eval.callback import rank_share

    problems = {f"HumanEval/{i}": {} for i in range(5)}
    shares = [list(rank_share(problems, r, 2)) for r in range(2)]
    assert shares == [["HumanEval/0", "HumanEval/2", "HumanEval/4"], ["HumanEval/1", "HumanEval/3"]]
    assert sorted(shares[0] + shares[1], key=lambda t: int(t.split("/")[1])) == list(problems)


def test_samples_do_not_depend_on_the_split(tiny_model_and_tokenizer):
    """Problem i is sampled with seed + i, so a rank that holds only problem 1 draws what one
    process holding problems 0 and 1 draws for it."""
    model, tok = tiny_model_and_tokenizer
    cb = HumanEvalCallback(n_problems=2, n_samples=2, k=[1], max_new_tokens=5, temperature=1.0, workers=1,
                           sandbox={"timeout": 2.0})
    problems = cb._problems_all()
    both = cb.sample_and_run(model, tok, problems)
    second = cb.sample_and_run(model, tok, dict(list(problems.items())[1:]))
    assert [r["completion"] for r in both if r["task_id"] == "HumanEval/1"] == [r["completion"] for r in second]


def test_full_decoder_gathers_fsdp_shards_into_an_equal_plain_model(tiny_model_and_tokenizer):
    import copy

    import torch
    from composer.utils import dist
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    from llmfoundry_lite.eval.callback import full_decoder

    dist.initialize_dist("cpu")  # one-rank process group: FSDP2's DTensors need one
    model, _ = tiny_model_and_tokenizer
    sharded = copy.deepcopy(model)
    for block in sharded.blocks:
        fully_shard(block)
    fully_shard(sharded)
    assert all(isinstance(p, DTensor) for p in sharded.parameters())
    plain = full_decoder(sharded)
    assert not any(isinstance(p, DTensor) for p in plain.parameters())
    ids = torch.randint(0, 1024, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(plain(ids), model(ids), rtol=0, atol=0)
    assert full_decoder(model) is model  # whole parameters: no copy
