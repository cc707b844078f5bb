import subprocess
import sys
from pathlib import Path

import pytest

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.filtering.config import FilterConfig, config_hash, fingerprint

ROOT = Path(__file__).resolve().parents[2]
YAML = ROOT / "yamls" / "data" / "filter.yaml"


def test_shipped_filter_yaml_loads_with_overrides():
    cfg = load_config(FilterConfig, YAML)
    assert cfg.heuristics.overrides["JSON"].min_alphanum_fraction == 0.15
    assert cfg.heuristics.overrides["JSON"].max_line_length is None
    assert (cfg.dedup.num_perm, cfg.dedup.bands, cfg.dedup.rows, cfg.dedup.threshold) == (256, 25, 10, 0.7)
    assert cfg.pii.email_placeholder == "<EMAIL>"


def test_typo_and_bad_values_name_the_key():
    with pytest.raises(ConfigError, match="heuristics.max_line_lenght"):
        load_config(FilterConfig, None, ["heuristics.max_line_lenght=3"])
    with pytest.raises(ConfigError, match=r"unknown engine 'dask'; choose from \['local', 'spark'\]"):
        load_config(FilterConfig, None, ["engine=dask"])
    with pytest.raises(ConfigError, match="dedup.threshold"):
        load_config(FilterConfig, None, ["dedup.threshold=1.5"])


def test_fingerprint_ignores_scheduling_keys_only():
    base = FilterConfig(input=["x"])
    assert config_hash(base) == config_hash(FilterConfig(input=["x"], workers=7, engine="spark"))
    assert config_hash(base) != config_hash(FilterConfig(input=["x"], max_doc_bytes=5))
    assert "workers" not in fingerprint(base) and "heuristics" in fingerprint(base)


def test_cli_fails_fast_on_config_errors_and_missing_input(tmp_path):
    run = [sys.executable, "data_prep/filter_stack.py", "--output", str(tmp_path / "o")]
    proc = subprocess.run([*run, "autogen.rules=[magic]"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "autogen.rules: unknown rule(s) ['magic']" in proc.stderr
    proc = subprocess.run([*run, "--input", str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "input not found" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_flags_yaml_and_overrides_in_any_position():
    from llmfoundry_lite.cli.filter import parse_args

    cfg = parse_args(["--input", "a.parquet", "b/", str(YAML), "workers=3", "--output", "o"])
    assert (cfg.input, cfg.output, cfg.workers) == (["a.parquet", "b/"], "o", 3)
    cfg = parse_args(["--output", "o", str(YAML), "dedup.near=false", "--input", "c.jsonl"])
    assert (cfg.input, cfg.dedup.near) == (["c.jsonl"], False)
