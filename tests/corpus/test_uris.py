"""Inputs as URIs (file://, dbfs:/, any fsspec filesystem)."""

import json
import time
from collections import Counter

from llmfoundry_lite.corpus.identity import file_identity
from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
from llmfoundry_lite.corpus.uris import local_path
from tests.filtering.stack_rows import module


def test_local_forms_name_paths(tmp_path):
    assert local_path(f"file://{tmp_path}/a b") == f"{tmp_path}/a b"
    assert local_path("file:///data/x%20y.parquet") == "/data/x y.parquet"
    assert local_path("dbfs:/mnt/stack") == "/dbfs/mnt/stack"
    assert local_path("/plain") == "/plain" and local_path("s3://bucket/key") is None


def test_remote_prefix_is_listed_and_read(memory_corpus):
    shards = list_input_shards(["memory://bucket/stack"])
    assert [s.path for s in shards] == ["memory:///bucket/stack/data-0.parquet", "memory:///bucket/stack/data-1.parquet",
                                        "memory:///bucket/stack/extra.jsonl"]
    docs = [d for s in shards for d in iter_documents(s, Counter())]
    assert len(docs) == 7 and docs[0]["repository_name"] == "octo/widgets" and docs[0]["licenses"] == ["MIT"]
    before = file_identity(shards[2])
    time.sleep(0.01)
    with memory_corpus.open("/bucket/stack/extra.jsonl", "wb") as f:  # replaced: a new version stamp
        f.write((json.dumps({"content": module(98), "path": "x.py", "stars": 4}) + "\n").encode())
    assert file_identity(shards[2]) != before
