"""Publishing in tasks: files are hashed and uploaded by an engine's map over groups of files (on Spark, in
executors); the caller lists, compares, deletes, and writes the marker and ``_published.json`` last."""

from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from llmfoundry_lite.corpus import publish as publish_mod
from llmfoundry_lite.corpus.publish import PUBLISHED_FILE, publish
from llmfoundry_lite.spark_session import SparkScope


def _stage(root: Path, parts: int = 40) -> Path:
    for i in range(parts):
        (root / "kept" / f"part-{i:05d}.parquet").parent.mkdir(parents=True, exist_ok=True)
        (root / "kept" / f"part-{i:05d}.parquet").write_bytes(f"kept {i}".encode() * (i + 1))
    (root / "rejected").mkdir(exist_ok=True)
    (root / "rejected" / "part-00000.parquet").write_bytes(b"rejected")
    (root / "work").mkdir(exist_ok=True)
    (root / "work" / "private.json").write_text("{}")
    (root / "stats.json").write_text('{"kept": 40}')
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _driver_uploads(monkeypatch) -> list[str]:
    """What this process (the driver) uploads; hashing here fails. Executors are other processes."""
    uploads: list[str] = []
    real_put = LocalFileSystem.put_file
    monkeypatch.setattr(LocalFileSystem, "put_file", lambda self, lpath, rpath, **kw: (
        uploads.append(Path(rpath).name), real_put(self, lpath, rpath, **kw))[1])
    monkeypatch.setattr(publish_mod, "_sha256", lambda path: pytest.fail(f"{path} hashed on the driver"))
    return uploads


def test_publish_in_spark_tasks_leaves_what_the_driver_leaves_and_the_driver_uploads_only_the_marker(
        tmp_path, spark, monkeypatch):
    stage = _stage(tmp_path / "stage")
    kw = {"marker": "stats.json", "exclude": ("work",)}
    assert publish(str(stage), f"local://{tmp_path}/by-driver", **kw) == {"uploaded": 42, "unchanged": 0, "deleted": 0}
    uploads = _driver_uploads(monkeypatch)
    with SparkScope("publish") as scope:
        assert publish(str(stage), f"local://{tmp_path}/in-tasks", map_fn=scope.map, **kw) == {
            "uploaded": 42, "unchanged": 0, "deleted": 0}
        assert uploads == ["stats.json"]
        in_tasks = tmp_path / "in-tasks"
        assert _tree(in_tasks) == _tree(tmp_path / "by-driver")  # _published.json (every digest) included
        assert set(_tree(in_tasks)) == {*(f"kept/part-{i:05d}.parquet" for i in range(40)), "rejected/part-00000.parquet",
                                        "stats.json", PUBLISHED_FILE}
        mtimes = {rel: (in_tasks / rel).stat().st_mtime_ns for rel in _tree(in_tasks)}
        parts = max(t for rel, t in mtimes.items() if rel not in ("stats.json", PUBLISHED_FILE))
        assert mtimes[PUBLISHED_FILE] >= mtimes["stats.json"] >= parts  # the marker after every part, then the record
        uploads.clear()
        assert publish(str(stage), f"local://{tmp_path}/in-tasks", map_fn=scope.map, **kw) == {
            "uploaded": 0, "unchanged": 42, "deleted": 0}
        assert uploads == []
        (stage / "kept" / "part-00003.parquet").write_bytes(b"KEPT 3!!")  # same size, new bytes
        (stage / "kept" / "part-00007.parquet").unlink()
        assert publish(str(stage), f"local://{tmp_path}/in-tasks", map_fn=scope.map, **kw) == {
            "uploaded": 2, "unchanged": 39, "deleted": 1}
    assert uploads == ["stats.json"]
    monkeypatch.undo()
    assert publish(str(stage), f"local://{tmp_path}/by-driver", **kw) == {"uploaded": 2, "unchanged": 39, "deleted": 1}
    assert _tree(tmp_path / "in-tasks") == _tree(tmp_path / "by-driver")


def test_tasks_hash_every_file_upload_groups_of_changed_files_and_never_the_marker(tmp_path):
    stage = _stage(tmp_path / "stage")
    calls: dict[str, list[list[str]]] = {}

    def map_fn(fn, tasks):
        calls.setdefault(fn.__name__, []).extend(task[-1] for task in tasks)
        return [fn(*task) for task in tasks]

    publish(str(stage), f"local://{tmp_path}/out", marker="stats.json", exclude=("work",), map_fn=map_fn)
    hashed, uploaded = calls["_hash_group"], calls["_upload_group"]
    assert sorted(rel for group in hashed for rel in group) == sorted(set(_tree(stage)) - {"work/private.json"})
    assert sorted(rel for group in uploaded for rel in group) == sorted(set(_tree(stage)) - {"work/private.json",
                                                                                            "stats.json"})
    assert all(len(group) <= publish_mod.PUBLISH_FILES_PER_TASK for group in hashed + uploaded)


def test_a_store_that_lives_in_this_process_is_published_from_here_whatever_the_map(tmp_path):
    """fsspec's memory:// exists in one process: tasks elsewhere would write into stores of their own."""
    fs = fsspec.filesystem("memory")
    stage = _stage(tmp_path / "stage", parts=2)

    def map_fn(fn, tasks):
        raise AssertionError("a task was asked to write memory://")

    try:
        assert publish(str(stage), "memory://inproc/t", marker="stats.json", exclude=("work",), map_fn=map_fn) == {
            "uploaded": 4, "unchanged": 0, "deleted": 0}
        assert fs.cat("/inproc/t/stats.json") == b'{"kept": 40}'
    finally:
        if fs.exists("/inproc"):
            fs.rm("/inproc", recursive=True)
