"""The ``objective:`` config section: YAML shape, validation messages, names matching the code."""

from __future__ import annotations

import pytest

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.objectives.config import OBJECTIVE_NAMES, UL2_MIXTURE_NAMES, ObjectiveConfig
from llmfoundry_lite.objectives.mixture import OBJECTIVES
from llmfoundry_lite.objectives.ul2 import UL2_MIXTURES

EXAMPLE = """
weights: {next_token: 0.5, fim: 0.4, ul2: 0.1}
fim: {fim_rate: 0.5, spm_rate: 0.5}
ul2: {mixture: ul2r, causal: false}
"""


def test_yaml_example_loads(tmp_path):
    path = tmp_path / "objective.yaml"
    path.write_text(EXAMPLE)
    cfg = load_config(ObjectiveConfig, path)
    assert cfg.weights == {"next_token": 0.5, "fim": 0.4, "ul2": 0.1}
    assert cfg.fim.spm_rate == 0.5 and cfg.ul2.mixture == "ul2r" and cfg.prefix_lm


def test_unknown_objective_lists_choices():
    with pytest.raises(
        ConfigError, match=r"unknown objective\(s\) \['fin'\]; choose from \['fim', 'next_token', 'ul2'\]"
    ):
        load_config(ObjectiveConfig, None, ["weights.fin=1.0"])


def test_rate_outside_unit_interval_names_the_key():
    with pytest.raises(ConfigError, match=r"objective.fim.fim_rate must lie in \[0, 1\], got 1.5"):
        load_config(ObjectiveConfig, None, ["fim.fim_rate=1.5"])


def test_unknown_ul2_mixture_lists_choices():
    with pytest.raises(ConfigError, match=r"objective.ul2.mixture='t5'; choose from \['ul2', 'ul2r'\]"):
        load_config(ObjectiveConfig, None, ["ul2.mixture=t5"])


def test_misspelled_section_key_fails():
    with pytest.raises(ConfigError, match="spm_rte"):
        load_config(ObjectiveConfig, None, ["fim.spm_rte=0.5"])


def test_config_names_match_the_dispatch_tables():
    assert set(OBJECTIVE_NAMES) == set(OBJECTIVES)
    assert set(UL2_MIXTURE_NAMES) == set(UL2_MIXTURES)


def test_yaml_mixture_replaces_the_default_instead_of_merging(tmp_path):
    path = tmp_path / "objective.yaml"
    path.write_text("weights: {fim: 0.5, ul2: 0.5}\n")
    assert load_config(ObjectiveConfig, path).mixture == {"fim": 0.5, "ul2": 0.5}
    assert load_config(ObjectiveConfig).mixture == {"next_token": 1.0}
    assert load_config(ObjectiveConfig, None, ["weights={next_token: 3, fim: 1}"]).mixture == {
        "fim": 0.25,
        "next_token": 0.75,
    }


def test_all_zero_weights_are_refused():
    with pytest.raises(ConfigError, match="must be non-negative and not all zero"):
        load_config(ObjectiveConfig, None, ["weights={fim: 0.0}"])
