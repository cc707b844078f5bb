"""Loader throughput per objective: samples/s and tokens/s with 1 and 2 DataLoader workers.

    .venv/bin/python benchmarks/bench_loader.py [key=value ...]

Reads MDS shards (``shards``; built from the local corpus with the project's shard writer
when missing), runs the training loader (``llmfoundry_lite.training.data``) with
next-token only, FIM at ``fim_rate``, the UL2 mixture and a next-token/FIM/UL2 mix, and
prints each against next-token with the same worker count. The last column compares with
what one code-125m training step (forward + backward, batch 1, same sequence length)
consumes on this machine, so the loader is shown never to be the bottleneck.
"""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmfoundry_lite.cli.common import user_errors  # noqa: E402
from llmfoundry_lite.config import load_config, split_cli  # noqa: E402
from llmfoundry_lite.objectives.config import FIMConfig, ObjectiveConfig  # noqa: E402


@dataclass
class BenchLoaderConfig:
    """Options of the loader benchmark."""

    shards: str = "runs/bench_loader/shards"
    """Directory with ``<split>/index.json``; built from ``corpus`` if absent."""
    split: str = "train"
    """Split folder under ``shards``."""
    corpus: str = "data/local_stack"
    """Stack-format Parquet corpus used to build shards when ``shards`` has none."""
    tokenizer: str = "tests/assets/tokenizer"
    """Tokenizer directory (must be the one the shards were made with)."""
    max_seq_len: int = 2048
    """Sequence length of shards built here (existing shards keep theirs)."""
    batch_size: int = 8
    """Samples per batch."""
    batches: int = 30
    """Timed batches per configuration (after one untimed warm-up batch)."""
    workers: list[int] = field(default_factory=lambda: [1, 2])
    """DataLoader worker counts to measure."""
    repeats: int = 3
    """Rounds over all rows; each row reports its fastest round (the machine may be shared)."""
    fim_rate: float = 0.5
    """FIM rate of the FIM row."""
    model_yaml: str = "yamls/code-125m.yaml"
    """Training preset whose model step is timed; the GPT-3 125M shape is used if it is missing."""


def ensure_shards(cfg: BenchLoaderConfig) -> Path:
    """The shards directory, building it with the project's shard writer when it has no ``split``."""
    out = Path(cfg.shards)
    if (out / cfg.split / "index.json").is_file():
        return out
    from llmfoundry_lite.shards.build import build_shards
    from llmfoundry_lite.shards.config import ShardsConfig

    print(f"building shards in {out} from {cfg.corpus} (max_seq_len={cfg.max_seq_len}) ...", flush=True)
    build_shards(
        ShardsConfig(
            input=[cfg.corpus], tokenizer=cfg.tokenizer, output=str(out), max_seq_len=cfg.max_seq_len, progress=False
        )
    )
    return out


def objective_rows(cfg: BenchLoaderConfig) -> dict[str, ObjectiveConfig]:
    """The objective configurations compared (next-token first: it is the peer)."""
    return {
        "next_token": ObjectiveConfig(weights={"next_token": 1.0}),
        f"fim {cfg.fim_rate}": ObjectiveConfig(weights={"fim": 1.0}, fim=FIMConfig(fim_rate=cfg.fim_rate)),
        "ul2 mixture": ObjectiveConfig(weights={"ul2": 1.0}),
        "nt .5/fim .4/ul2 .1": ObjectiveConfig(weights={"next_token": 0.5, "fim": 0.4, "ul2": 0.1}),
    }


def time_loader(shards: Path, cfg: BenchLoaderConfig, objective, workers: int) -> tuple[float, int]:
    """(seconds for ``cfg.batches`` batches after a warm-up batch, sequence length)."""
    from streaming.base.util import clean_stale_shared_memory

    from llmfoundry_lite.training.config import LoaderConfig
    from llmfoundry_lite.training.data import build_dataloader

    clean_stale_shared_memory()
    lc = LoaderConfig(local=str(shards), split=cfg.split, shuffle=False, shuffle_seed=0, num_workers=workers)
    loader = build_dataloader(lc, objective, cfg.batch_size)
    it = iter(loader)
    seq_len = next(it)["input_ids"].shape[1]
    start = time.perf_counter()
    for _ in range(cfg.batches):
        next(it)
    seconds = time.perf_counter() - start
    del it, loader
    gc.collect()
    return seconds, seq_len


def model_tokens_per_second(cfg: BenchLoaderConfig, seq_len: int) -> tuple[float, str]:
    """Tokens/s one code-125m forward+backward (batch 1) consumes here, and which shape was used."""
    import torch

    from llmfoundry_lite.models.config import ModelConfig
    from llmfoundry_lite.models.loss import lm_loss
    from llmfoundry_lite.models.transformer import Transformer

    if Path(cfg.model_yaml).is_file():
        from llmfoundry_lite.training.config import TrainConfig

        model_cfg = load_config(TrainConfig, cfg.model_yaml).model
        model_cfg.max_seq_len = seq_len
        label = cfg.model_yaml
    else:
        model_cfg = ModelConfig(d_model=768, n_layers=12, n_heads=12, vocab_size=32768, max_seq_len=seq_len)
        label = f"GPT-3 125M shape ({cfg.model_yaml} not found)"
    model = Transformer(model_cfg)
    ids = torch.randint(0, model_cfg.vocab_size, (1, seq_len))
    lm_loss(model(ids[:, :128]), ids[:, :128]).backward()  # warm-up (short): allocator, kernels
    model.zero_grad()
    start = time.perf_counter()
    lm_loss(model(ids), ids).backward()
    return seq_len / (time.perf_counter() - start), f"{label}, {model_cfg.num_params() / 1e6:.0f}M params"


def run(cfg: BenchLoaderConfig) -> None:
    """Measure every objective x worker count, then print the table."""
    from llmfoundry_lite.objectives import build_objective
    from llmfoundry_lite.tokenizer.io import load_tokenizer

    shards = ensure_shards(cfg)
    tokenizer = load_tokenizer(cfg.tokenizer)
    samples = read_samples(shards, cfg)
    seq_len = len(samples[0])
    cpu = {
        name: cpu_us_per_sample(build_objective(o, tokenizer, seq_len), samples)
        for name, o in objective_rows(cfg).items()
    }
    results: dict[tuple[str, int], tuple[float, int]] = {}
    for round_ in range(cfg.repeats):  # rounds interleave the rows, so drifting machine load hits all alike
        for workers in cfg.workers:
            for name, ocfg in objective_rows(cfg).items():
                seconds, _ = time_loader(shards, cfg, build_objective(ocfg, tokenizer, seq_len), workers)
                best = min(seconds, results.get((name, workers), (seconds, 0))[0])
                results[(name, workers)] = (best, seq_len)
                print(f"  round {round_}: {name:<22} workers={workers}: {seconds:.2f}s", flush=True)
    model_tps, model_label = model_tokens_per_second(cfg, seq_len)
    print_table(cfg, results, model_tps, model_label)
    print("\nobjective alone, in-process CPU time per sample: " + ", ".join(f"{k} {v:.0f} us" for k, v in cpu.items()))


def read_samples(shards: Path, cfg: BenchLoaderConfig) -> list:
    """The first ``batches * batch_size`` packed samples, read once (for the in-process timing)."""
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    ds = StreamingDataset(local=str(shards / cfg.split), shuffle=False, batch_size=1)
    samples = [ds[i]["tokens"] for i in range(min(len(ds), cfg.batches * cfg.batch_size))]
    del ds
    gc.collect()
    return samples


def cpu_us_per_sample(objective, samples: list) -> float:
    """CPU time of the objective alone, in this process (steadier than wall time on a shared machine)."""
    start = time.process_time()
    for i, tokens in enumerate(samples):
        objective(tokens, i, 0)
    return (time.process_time() - start) / len(samples) * 1e6


def print_table(cfg: BenchLoaderConfig, results: dict, model_tps: float, model_label: str) -> None:
    """Markdown table: samples/s, tokens/s, ratio to next-token (same workers), multiple of the model's need."""
    n = cfg.batches * cfg.batch_size
    print(f"\nloader: {n} samples per row (fastest of {cfg.repeats} rounds), batch {cfg.batch_size}")
    print(f"model step: {model_label}")
    print("| objective | workers | samples/s | tokens/s | vs next-token | vs code-125m step |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for (name, workers), (seconds, seq_len) in results.items():
        peer = results[("next_token", workers)][0]
        tps = n * seq_len / seconds
        print(
            f"| {name} | {workers} | {n / seconds:,.0f} | {tps:,.0f} | {peer / seconds:.2f}x | {tps / model_tps:,.1f}x |"
        )
    print(f"\ncode-125m forward+backward (batch 1, seq {seq_len}) consumes {model_tps:,.0f} tokens/s here")


def main(argv: list[str]) -> None:
    with user_errors():
        yaml_path, overrides = split_cli(argv)
        cfg = load_config(BenchLoaderConfig, yaml_path, overrides)
    run(cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
