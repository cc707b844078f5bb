import pytest

from benchmarks.quality import eval_pii


def test_prints_table_per_subset_and_total(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.py.pii").write_text("AUTHOR = '⟦email:jane.roe@acme-widgets.io⟧'\n")
    (tmp_path / "b" / "y.env.pii").write_text("HOST=⟦ip:34.117.59.81⟧\nLAN=10.0.0.1\n")
    assert eval_pii.main(["--dir", str(tmp_path), "--no-baseline", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "[a] 1 files" in out and "[b] 1 files" in out and "[all] 2 labeled files" in out
    flat = " ".join(out.split())
    assert "[all] 2 labeled files" in flat
    assert "email 1 1 1 0 0 1.000 1.000 ip_address 1 1 1 0 0 1.000 1.000 key 0 0 0 0 0 1.000 1.000" in flat


def test_bad_override_exits_with_config_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        eval_pii.main(["--dir", str(tmp_path), "key_min_length=2"])
    assert exc.value.code == 2
    assert "pii.key_min_length must be at least 8" in capsys.readouterr().err
