"""A remote input's identity comes from the version fields its store reports, not from reading its bytes."""

import hashlib

import pytest

from llmfoundry_lite.corpus.identity import InputChangedError, check_unchanged, file_identity
from llmfoundry_lite.corpus.readers import InputShard
from tests.corpus.versioned_store import HfStore, S3Store, install

DATA = b'{"content": "def f():\\n    return 1\\n", "path": "f.py"}\n'


def test_hub_object_is_identified_by_its_lfs_sha256_and_blob_id_without_reading_it(monkeypatch):
    hub = install(monkeypatch, HfStore)
    uri = hub.put_object("/datasets/org/stack/data.jsonl", DATA, blob_id="a" * 40,
                         lfs={"size": len(DATA), "sha256": "1" * 64, "pointer_size": 132})
    shard = InputShard(uri, "jsonl")
    identity = file_identity(shard)
    assert identity["version"] == {"lfs.sha256": "1" * 64, "blob_id": "a" * 40} and identity["size"] == len(DATA)
    assert hub.info_calls[-1].get("expand_info") is True  # HfFileSystem gives the fields only when expanded
    hub.versions["/datasets/org/stack/data.jsonl"]["lfs"] = {"size": len(DATA), "sha256": "2" * 64, "pointer_size": 132}
    replaced = file_identity(shard)  # a new LFS object with the same size (and, here, the same test bytes)
    assert replaced != identity and replaced["version"]["lfs.sha256"] == "2" * 64
    with pytest.raises(InputChangedError, match="data.jsonl changed during this run .version differ"):
        check_unchanged(shard, identity)
    assert hub.reads == {}  # not one byte read to identify or check it


def test_s3_object_is_identified_by_etag_and_version_id(monkeypatch):
    s3 = install(monkeypatch, S3Store)
    uri = s3.put_object("/bucket/stack/data.jsonl", DATA, ETag='"9b2cf535f27731c974343645a3985328"',
                        VersionId="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", LastModified="2024-05-01T00:00:00Z")
    shard = InputShard(uri, "jsonl")
    identity = file_identity(shard)
    assert identity["version"] == {"ETag": '"9b2cf535f27731c974343645a3985328"',
                                   "VersionId": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"}
    s3.versions["/bucket/stack/data.jsonl"]["VersionId"] = "Oq2VHXbLGj0ItYwNZ6BfoyTpnz8uHY3c"  # a new version
    assert file_identity(shard) != identity
    check_unchanged(InputShard(uri, "jsonl"), file_identity(shard))
    assert s3.reads == {}


def test_object_without_version_fields_is_hashed_once_then_checked_by_size(monkeypatch):
    hub = install(monkeypatch, HfStore)
    uri = hub.put_object("/datasets/org/stack/data.jsonl", DATA)  # a store that reports no version field
    shard = InputShard(uri, "jsonl")
    identity = file_identity(shard)
    assert identity["version"] == {"sha256": hashlib.sha256(DATA).hexdigest()}
    for _ in range(3):  # pass 1 checks once, pass 3 twice
        check_unchanged(shard, identity)
    assert hub.reads == {"/datasets/org/stack/data.jsonl": [len(DATA)]}  # read once, to be hashed
    hub.pipe_file("/datasets/org/stack/data.jsonl", DATA + DATA)
    with pytest.raises(InputChangedError, match="size differ"):
        check_unchanged(shard, identity)
