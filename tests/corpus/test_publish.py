"""Object-store outputs: a stage builds in staging, then publishes its finished tree, marker last."""

from pathlib import Path

import fsspec
import pytest

from llmfoundry_lite.corpus import publish as publish_mod
from llmfoundry_lite.corpus.publish import PUBLISHED_FILE, publish, staging_dir


@pytest.fixture
def store():
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/out"):
        fs.rm("/out", recursive=True)


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _remote(fs) -> dict[str, bytes]:
    return {p[len("/out/t/"):]: fs.cat(p) for p in fs.find("/out/t")}


def test_staging_dir_keeps_posix_outputs_in_place_and_stages_object_stores(tmp_path, monkeypatch):
    assert staging_dir(str(tmp_path), "", "output", shared=False) == (str(tmp_path), None)
    assert staging_dir(f"file://{tmp_path}", "", "output", shared=True) == (str(tmp_path), None)
    with pytest.raises(ValueError, match=r"output.staging is only for object-store outputs"):
        staging_dir(str(tmp_path), str(tmp_path / "s"), "output", shared=False)
    assert staging_dir("memory://out/t", f"file://{tmp_path}/s", "output", shared=True) == (
        f"{tmp_path}/s", "memory://out/t")
    with pytest.raises(ValueError, match=r"a Spark run needs output.staging=PATH"):
        staging_dir("memory://out/t", "", "output", shared=True)
    with pytest.raises(ValueError, match=r"staging must be a local or shared POSIX path"):
        staging_dir("memory://out/t", "memory://elsewhere", "output", shared=False)
    monkeypatch.setattr(publish_mod, "STAGING_ROOT", tmp_path / "cache")
    first, _ = staging_dir("memory://out/t", "", "output", shared=False)
    assert Path(first).parent == tmp_path / "cache" and first != staging_dir("memory://out/u", "", "o", False)[0]
    with pytest.raises(ValueError, match=r"no filesystem for this URI.*s3fs"):
        staging_dir("nosuchstore://b/out", "", "output", shared=False)


def test_publish_uploads_changes_only_deletes_stale_files_and_puts_the_marker_last(tmp_path, store, monkeypatch):
    stage = tmp_path / "stage"
    _tree(stage, {"kept/part-00000.parquet": "a", "kept/part-00001.parquet": "b", "stats.json": "{}",
                  "work/pass1/x.json": "private", "kept/part-00002.parquet.tmp": "half"})
    order: list[str] = []
    real_put = type(store).put_file
    monkeypatch.setattr(type(store), "put_file", lambda self, lpath, rpath, **kw: (
        order.append(rpath.rsplit("/", 1)[1]), real_put(self, lpath, rpath, **kw))[1])
    counts = publish(str(stage), "memory://out/t", marker="stats.json", exclude=("work",))
    assert counts == {"uploaded": 3, "unchanged": 0, "deleted": 0} and order[-1] == "stats.json"
    remote = _remote(store)
    assert set(remote) == {"kept/part-00000.parquet", "kept/part-00001.parquet", "stats.json", PUBLISHED_FILE}
    assert publish(str(stage), "memory://out/t", marker="stats.json", exclude=("work",)) == {
        "uploaded": 0, "unchanged": 3, "deleted": 0}
    (stage / "kept" / "part-00001.parquet").write_text("B")  # same size, new bytes
    (stage / "kept" / "part-00000.parquet").unlink()
    order.clear()
    counts = publish(str(stage), "memory://out/t", marker="stats.json", exclude=("work",))
    assert counts == {"uploaded": 2, "unchanged": 0, "deleted": 1} and order == ["part-00001.parquet", "stats.json"]
    remote = _remote(store)
    assert remote["kept/part-00001.parquet"] == b"B" and "kept/part-00000.parquet" not in remote


def test_publish_refuses_an_unfinished_tree(tmp_path, store):
    _tree(tmp_path / "stage", {"kept/part-00000.parquet": "a"})
    with pytest.raises(ValueError, match=r"left no stats.json; nothing is published unfinished"):
        publish(str(tmp_path / "stage"), "memory://out/t", marker="stats.json")
    assert not store.exists("/out/t/kept")
