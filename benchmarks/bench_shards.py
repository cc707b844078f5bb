"""Sharding throughput (tokens/s) and StreamingDataset read throughput.

Peers measured in the same run: the tokenizer alone encoding the same documents
(the ceiling for sharding), and sharding with 1 vs ``--workers`` processes. Reading
is measured sequentially and with streaming's default shuffle, as samples/s and
tokens/s.

    .venv/bin/python benchmarks/bench_shards.py [--input data/local_stack] [--tokenizer tests/assets/tokenizer] [--mb 8]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
from llmfoundry_lite.shards.build import build_shards
from llmfoundry_lite.shards.config import ShardsConfig
from llmfoundry_lite.tokenizer.io import encode_texts, load_tokenizer


def write_subset(inputs: list[str], budget: int, out: Path) -> list[str]:
    """The first ``budget`` bytes of documents, as one Parquet file with 4 row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, total = [], 0
    for shard in list_input_shards(inputs):
        for doc in iter_documents(shard, Counter()):
            if total >= budget:
                break
            rows.append(doc)
            total += doc["size"]
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "subset.parquet", row_group_size=max(1, len(rows) // 4))
    return [r["content"] for r in rows]


def time_encode(tokenizer_dir: str, texts: list[str]) -> tuple[float, int]:
    tok = load_tokenizer(tokenizer_dir)
    start = time.perf_counter()
    n = 0
    for i in range(0, len(texts), 64):
        n += sum(len(ids) + 1 for ids in encode_texts(tok, texts[i : i + 64]))
    return time.perf_counter() - start, n


def time_shards(corpus: Path, tokenizer_dir: str, out: Path, workers: int, seq: int) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = ShardsConfig(input=[str(corpus)], tokenizer=tokenizer_dir, output=str(out), max_seq_len=seq,
                       unit_bytes=1, workers=workers, progress=False)
    start = time.perf_counter()
    manifest = build_shards(cfg)
    return time.perf_counter() - start, manifest


def time_read(folder: Path, shuffle: bool) -> tuple[float, int, int]:
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    ds = StreamingDataset(local=str(folder), shuffle=shuffle, shuffle_seed=1, batch_size=8)
    start = time.perf_counter()
    samples = tokens = 0
    for sample in ds:
        samples += 1
        tokens += len(sample["tokens"])
    return time.perf_counter() - start, samples, tokens


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", nargs="+", default=["data/local_stack"])
    ap.add_argument("--tokenizer", default="tests/assets/tokenizer")
    ap.add_argument("--mb", type=float, default=8.0, help="megabytes of documents to shard")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-seq-len", type=int, default=512)
    args = ap.parse_args(argv)
    import streaming  # noqa: F401  (import cost kept out of the timings)

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        texts = write_subset(args.input, int(args.mb * 1e6), corpus)
        enc_s, enc_tokens = time_encode(args.tokenizer, texts)
        print(f"{len(texts)} docs, {sum(map(len, texts)):,} chars, {enc_tokens:,} tokens (+EOS) with {args.tokenizer}\n")
        print(f"{'sharding':<34}{'seconds':>9}{'tokens/s':>12}{'÷ encode only':>15}")
        print(f"{'tokenizer encode only (1 proc)':<34}{enc_s:>9.2f}{enc_tokens / enc_s:>12,.0f}{1.0:>15.2f}")
        for w in sorted({1, args.workers}):
            secs, m = time_shards(corpus, args.tokenizer, Path(tmp) / f"shards{w}", w, args.max_seq_len)
            tokens = m["splits"]["train"]["tokens"] + m["splits"]["val"]["tokens"]
            print(f"{f'build_shards workers={w}':<34}{secs:>9.2f}{tokens / secs:>12,.0f}{(tokens / secs) / (enc_tokens / enc_s):>15.2f}")
        print(f"\n{'StreamingDataset read (train)':<34}{'seconds':>9}{'samples/s':>12}{'tokens/s':>14}")
        for shuffle in (False, True):
            secs, n, t = time_read(Path(tmp) / "shards1" / "train", shuffle)
            print(f"{f'shuffle={shuffle}':<34}{secs:>9.2f}{n / secs:>12,.0f}{t / secs:>14,.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
