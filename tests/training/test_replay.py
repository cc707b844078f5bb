"""Spike replay finds the checkpoint before a step in either format (full file or sharded directory)."""

import pytest

from llmfoundry_lite.training.replay import checkpoint_before


def test_checkpoint_before_sees_full_files_and_finished_sharded_directories(tmp_path):
    (tmp_path / "ep0-ba2-rank0.pt").write_bytes(b"x")
    (tmp_path / "ep0-ba4").mkdir()
    (tmp_path / "ep0-ba4" / ".metadata").write_bytes(b"x")
    (tmp_path / "ep0-ba6").mkdir()  # a sharded save that never finished: no .metadata
    (tmp_path / "latest-rank0.pt").symlink_to("ep0-ba4")
    assert checkpoint_before(tmp_path, 3).name == "ep0-ba2-rank0.pt"
    assert checkpoint_before(tmp_path, 7).name == "ep0-ba4"
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at or before step 1 .* have \[2, 4\]"):
        checkpoint_before(tmp_path, 1)
