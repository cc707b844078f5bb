"""spark_session: paths as Spark must be given them, attempt-private names, and the executors' Python."""

import sys

import pytest

from llmfoundry_lite.spark_session import SparkScope, attempt_tmp, publish_dir, spark_path


def test_spark_path_gives_local_paths_their_scheme_and_leaves_uris_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert spark_path("out/lang=python") == f"file://{tmp_path}/out/lang=python"  # absolute, not percent-encoded
    for uri in ("dbfs:/mnt/x", "s3a://bucket/key", "file:///abs"):
        assert spark_path(uri) == uri


def test_attempt_names_are_private_hidden_and_tmp(tmp_path):
    a, b = attempt_tmp(tmp_path / "part-0.parquet"), attempt_tmp(tmp_path / "part-0.parquet")
    assert a != b and a.name.startswith(".part-0.parquet.p") and a.suffix == ".tmp"


def test_publish_dir_keeps_a_directory_another_attempt_completed(tmp_path):
    final = tmp_path / "unit"
    first, second = tmp_path / ".unit.a.tmp", tmp_path / ".unit.b.tmp"
    for folder, text in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "shard").write_text(text)
    assert publish_dir(first, final) and not publish_dir(second, final)
    assert (final / "shard").read_text() == "first" and not second.exists()


def test_a_running_session_with_another_python_is_an_error_not_a_silent_mismatch(spark):
    with SparkScope("t", python=sys.executable) as scope:  # the one it runs: fine
        assert scope.spark is spark
    with pytest.raises(ValueError, match=r"spark_python=/opt/other/python: the running Spark session's executors use"):
        with SparkScope("t", python="/opt/other/python"):
            pass
    assert not spark.sparkContext._jsc.sc().isStopped()
