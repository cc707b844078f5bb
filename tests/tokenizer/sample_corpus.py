"""A corpus that exercises every way the per-unit sample could drift from one pass over the whole corpus,
and that pass itself (the sampler as it was before units: ``single_pass``), the reference the merged sample
must equal."""

from __future__ import annotations

import gzip
import hashlib
import heapq
import json
from collections import Counter
from pathlib import Path

from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
from llmfoundry_lite.tokenizer.sample import TextSample, doc_key, strip_special_strings
from llmfoundry_lite.tokenizer.special import FIM_PREFIX, special_tokens


def _doc(i: int, doc_id: str | None = None) -> dict:
    body = f"def f_{i}(x):\n    return x * {i}  # {FIM_PREFIX if i % 9 == 0 else ''}\n" * (1 + i % 7)
    return {"id": doc_id or f"doc-{i}", "content": body, "path": f"src/f{i}.py", "lang": "Python"}


def write_corpus(root: Path, one_id: str = "") -> Path:
    """Two Parquet files of many row groups, a JSONL file with bad lines (cut into byte ranges by a small
    ``unit_bytes``), a gzipped JSONL file (never cut); ids repeat within and across files (same key: the
    reading order breaks the tie) and records are skipped for several reasons, first seen in different files.
    ``one_id``: every document has this id (one key for all: the sample is a prefix in reading order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def ident(i: int, repeated: bool, other: str) -> str | None:
        return one_id or (other if repeated else None)

    root.mkdir(parents=True)
    a = [_doc(i, ident(i, i == 30, "doc-5")) for i in range(40)]  # a duplicate id inside one file
    a[7]["content"] = None  # null_content
    a[21]["content"] = "   \n"  # empty
    pq.write_table(pa.Table.from_pylist(a), root / "a.parquet", row_group_size=3)
    b = [_doc(i, ident(i, i % 5 == 0, f"doc-{i - 40}")) for i in range(40, 65)]  # ids of a.parquet again
    pq.write_table(pa.Table.from_pylist(b), root / "b.parquet", row_group_size=4)
    lines = []
    for i in range(65, 125):
        lines.append(json.dumps(_doc(i, ident(i, i % 11 == 0, "doc-3"))))
        if i % 17 == 0:
            lines.append("{not json")  # bad_json_line
        if i % 23 == 0:
            lines.append("[1, 2]")  # json_not_object
    (root / "c.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(root / "d.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps(_doc(i, ident(i, i == 130, "doc-3"))) + "\n" for i in range(125, 135)))
    return root


def single_pass(inputs: list[str], budget: int, seed: int, max_doc_bytes: int, num_reserved: int) -> TextSample:
    """The sampler before units, verbatim: one streaming pass over every document, a bounded heap."""
    skips: Counter = Counter()
    heap: list[tuple[int, int, int, str]] = []
    total = seen = 0
    for shard in list_input_shards(inputs):
        for doc in iter_documents(shard, skips):
            k, order, size = int.from_bytes(doc_key(seed, doc["id"]), "big"), seen, min(doc["size"], max_doc_bytes)
            seen += 1
            if heap and total >= budget and (k, order) > (-heap[0][0], -heap[0][1]):
                continue
            heapq.heappush(heap, (-k, -order, size, doc["content"][:max_doc_bytes]))
            total += size
            while len(heap) > 1 and total - heap[0][2] >= budget:
                total -= heapq.heappop(heap)[2]
    specials = special_tokens(num_reserved)
    texts, removed, digest = [], 0, hashlib.sha256()
    for *_, text in sorted(heap, reverse=True):
        clean, n = strip_special_strings(text, specials)
        removed += n
        texts.append(clean)
        digest.update(clean.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    nbytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    return TextSample(texts, seen, nbytes, digest.hexdigest(), removed, dict(skips))
