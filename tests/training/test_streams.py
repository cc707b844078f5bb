"""Training on a mixture of sources: streaming ``Stream``s with proportions or repeats, counted per stream."""

import json
import math

import pytest

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.objectives import ObjectiveConfig, build_objective
from llmfoundry_lite.tokenizer.io import load_tokenizer
from llmfoundry_lite.training.config import LoaderConfig, TrainConfig
from llmfoundry_lite.training.data import build_dataloader
from tests.training.shards import ROOT, TOKENIZER_DIR, tiny_overrides, write_shards


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    a = write_shards(root / "a", sources=["json/decoder.py", "json/encoder.py", "textwrap.py"])
    b = write_shards(root / "b", sources=["colorsys.py", "bisect.py", "heapq.py"], n_val=4)
    return a, b


def _streams(path_a, path_b, key: str = "proportion", a: float = 1.0, b: float = 1.0) -> list[str]:
    return [f"train_loader.streams={{a: {{local: {path_a}, {key}: {a}}}, b: {{local: {path_b}, {key}: {b}}}}}"]


def _mixture_cfg(a, b, save, *extra, **kw) -> TrainConfig:
    overrides = [o for o in tiny_overrides(a, save, **kw) if not o.startswith("train_loader.local=")]
    overrides += ["train_loader.local=''", f"eval_loader.local={a}", *extra]  # code-tiny.yaml names one local
    return load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml", overrides)


def test_proportions_hold_over_a_few_hundred_samples(two_sources, tmp_path):
    from llmfoundry_lite.callbacks.metrics_file import read_metrics
    from llmfoundry_lite.training.summary import write_run_summary
    from llmfoundry_lite.training.trainer import build_trainer

    a, b = two_sources
    cfg = _mixture_cfg(a, b, tmp_path / "run", *_streams(a, b, a=0.75, b=0.25), "train_loader.epoch_size=2000",
                       max_duration="75ba", eval_interval="75ba", save_interval="75ba")
    trainer = build_trainer(cfg)
    trainer.fit()
    summary = write_run_summary(trainer, tmp_path / "run")
    counts = summary["samples_by_stream"]
    assert counts["a"] + counts["b"] == 300 == summary["samples_trained"]
    sigma = math.sqrt(300 * 0.75 * 0.25)  # binomial bound; drawing without replacement is tighter
    assert abs(counts["a"] - 225) <= 3 * sigma, counts
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["samples_by_stream"] == counts
    logged = read_metrics(tmp_path / "run" / "metrics.jsonl", "data/samples/b")
    assert logged[max(logged)] == counts["b"]


def _epoch_streams(lc: LoaderConfig, batch: int = 4) -> list[int]:
    objective = build_objective(ObjectiveConfig(), load_tokenizer(TOKENIZER_DIR), 64)
    return [s for b in build_dataloader(lc, objective, batch) for s in b["stream"].tolist()]


def test_repeat_upsamples_a_stream_without_resharding_and_is_deterministic(two_sources):
    from streaming import StreamingDataset

    a, b = two_sources
    size_a, size_b = (StreamingDataset(local=str(p / "train"), batch_size=1).num_samples for p in (a, b))
    lc = load_config(LoaderConfig, None, [f"streams={{a: {{local: {a}}}, b: {{local: {b}, repeat: 3}}}}"])
    order = _epoch_streams(lc, batch=1)
    assert (order.count(0), order.count(1)) == (size_a, 3 * size_b)  # one epoch: exact counts
    assert _epoch_streams(lc, batch=1) == order  # the same draw and order every time
    reseeded = _epoch_streams(load_config(LoaderConfig, None, [f"streams={{a: {{local: {a}}}, b: {{local: {b}, repeat: 3}}}}",
                                                               "shuffle_seed=3"]), batch=1)
    assert reseeded != order and sorted(reseeded) == sorted(order)


def test_counts_resume_with_the_checkpoint(two_sources, tmp_path):
    from llmfoundry_lite.training.trainer import build_trainer

    a, b = two_sources
    weights = _streams(a, b, a=0.5, b=0.5)
    straight = build_trainer(_mixture_cfg(a, b, tmp_path / "s", *weights, "train_loader.epoch_size=200",
                                          max_duration="6ba", eval_interval="6ba", save_interval="6ba"))
    straight.fit()
    first = build_trainer(_mixture_cfg(a, b, tmp_path / "r", *weights, "train_loader.epoch_size=200",
                                       max_duration="3ba", eval_interval="3ba", save_interval="3ba"))
    first.fit()
    first.close()
    resumed = build_trainer(_mixture_cfg(a, b, tmp_path / "r", *weights, "train_loader.epoch_size=200",
                                         "autoresume=true", max_duration="6ba", eval_interval="6ba",
                                         save_interval="3ba"))
    resumed.fit()
    counter = next(c for c in resumed.state.callbacks if type(c).__name__ == "StreamCounter")
    reference = next(c for c in straight.state.callbacks if type(c).__name__ == "StreamCounter")
    assert counter.samples_by_stream() == reference.samples_by_stream() and sum(counter.totals) == 24


@pytest.mark.parametrize(("overrides", "message"), [
    (["streams={a: {local: A, proportion: 0.5}, b: {local: B, proportion: 0.5}}"], r"need epoch_size"),
    (["streams={a: {local: A, proportion: 0.5}, b: {local: B}}"], r"streams \['b'\] have no proportion"),
    (["streams={a: {local: A, repeat: 2}}", "epoch_size=10"], r"epoch_size is set by repeat"),
    (["streams={a: {local: A}}", "local=X"], r"give local or streams, not both"),
    (["streams={a: {local: A, proportion: 0.5, repeat: 2}}", "epoch_size=5"], r"streams.a: give proportion or repeat"),
    (["streams={a: {proportion: 1.0}}", "epoch_size=5"], r"streams.a.local: name the stream's shard directory"),
    (["streams={a: {local: A, repeat: 0}}"], r"streams.a.repeat must be > 0"),
    (["epoch_size=5"], r"epoch_size needs streams"),
])
def test_mixture_config_errors_say_what_to_do(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(LoaderConfig, None, overrides)


def test_streams_of_another_sequence_length_are_refused(two_sources, tmp_path):
    from llmfoundry_lite.training.trainer import load_run_tokenizer

    a, _ = two_sources
    short = write_shards(tmp_path / "short", seq_len=32)
    cfg = _mixture_cfg(a, short, tmp_path / "run", *_streams(a, short, key="repeat", a=1, b=1), "check_manifest=false")
    with pytest.raises(ValueError, match=r"train_loader.streams do not share one tokenizer and sequence length "
                                         r"\(a: tokenizer .*max_seq_len 64; b: tokenizer .*max_seq_len 32\)"):
        load_run_tokenizer(cfg)


def test_the_resolved_mixture_is_printed_per_stream(two_sources):
    from streaming import StreamingDataset

    from llmfoundry_lite.training.data import describe_mixture

    a, b = two_sources
    lc = load_config(LoaderConfig, None, [f"streams={{a: {{local: {a}}}, b: {{local: {b}, repeat: 3}}}}"])
    objective = build_objective(ObjectiveConfig(), load_tokenizer(TOKENIZER_DIR), 64)
    dataset = build_dataloader(lc, objective, 1).dataset
    size_a, size_b = (StreamingDataset(local=str(p / "train"), batch_size=1).num_samples for p in (a, b))
    text = describe_mixture(dataset, ["a", "b"])
    assert text.splitlines()[0] == f"train_loader: 2 streams, {size_a + 3 * size_b:,} samples per epoch"
    assert f"  b: {3 * size_b:,} of {size_b:,} samples per epoch (" in text and "repeat 3.00)" in text
