"""Two attempts of one shard unit at once (speculation, a zombie): the first complete directory stays."""

from llmfoundry_lite.corpus.units import plan_units
from llmfoundry_lite.shards.build import build_shards
from llmfoundry_lite.shards.writer import write_unit
from tests.overlapping_attempts import run_overlapping

from .conftest import shard_cfg


def _files(root):
    return {str(p.relative_to(root)): (p.stat().st_ino, p.read_bytes())
            for split in ("train", "val") for p in sorted((root / split).rglob("*")) if p.is_file()}


def test_a_late_attempt_never_deletes_or_rewrites_the_directory_a_finished_one_put_in_place(corpus_dir, tmp_path):
    build_shards(shard_cfg(corpus_dir, tmp_path / "ref", workers=1))
    cfg = shard_cfg(corpus_dir, tmp_path / "out", workers=1)
    unit = plan_units(cfg.input, cfg.unit_bytes)[0]
    a, b, after_b = run_overlapping(write_unit, (unit, [cfg]), "llmfoundry_lite.shards.writer._SplitWriter.write",
                                    "writer", tmp_path / "attempts", between=lambda: _files(tmp_path / "out"))
    assert b.returncode == 0, b.stdout[-3000:]
    assert a.returncode == 0, a.stdout[-3000:]  # the late attempt finishes too: its work was not lost
    assert after_b and any(name.startswith(f"train/{unit.name}/") for name in after_b)
    assert _files(tmp_path / "out") == after_b  # the same files, the same inodes: A kept B's directory
    reference = {k: v[1] for k, v in _files(tmp_path / "ref").items() if k.split("/")[1] == unit.name}
    assert {k: v[1] for k, v in after_b.items()} == reference
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]  # A removed its own
