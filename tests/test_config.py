from dataclasses import dataclass, field

import pytest

from llmfoundry_lite.config import ConfigError, load_config, save_config, split_cli, to_yaml


@dataclass
class Inner:
    width: int = 4
    name: str = "a"

    def __post_init__(self) -> None:
        if self.width < 0:
            raise ValueError(f"inner.width must be >= 0, got {self.width}")


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5
    label: str = "run-${inner.width}"
    tags: list[str] = field(default_factory=list)


def test_defaults_and_interpolation():
    cfg = load_config(Outer, None, ["inner.width=7"])
    assert isinstance(cfg, Outer) and isinstance(cfg.inner, Inner)
    assert cfg.inner.width == 7
    assert cfg.label == "run-7"


def test_yaml_then_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("rate: 0.25\ninner:\n  name: b\n")
    cfg = load_config(Outer, y, ["inner.name=c"])
    assert cfg.rate == 0.25 and cfg.inner.name == "c"


def test_typo_top_level_names_key_and_lists_valid():
    with pytest.raises(ConfigError, match=r"'rte'.*did you mean 'rate'.*valid keys of <top level>: inner, label, rate, tags"):
        load_config(Outer, None, ["rte=1"])


def test_typo_nested_in_yaml_names_full_key(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("inner:\n  widht: 3\n")
    with pytest.raises(ConfigError, match=r"'inner\.widht' in .*c\.yaml.*valid keys of inner: name, width"):
        load_config(Outer, y)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"bad value for config key 'inner\.width'.*'abc'"):
        load_config(Outer, None, ["inner.width=abc"])


def test_post_init_validation_is_config_error():
    with pytest.raises(ConfigError, match="inner.width must be >= 0"):
        load_config(Outer, None, ["inner.width=-1"])


def test_bad_interpolation_names_key():
    with pytest.raises(ConfigError, match=r"'label'"):
        load_config(Outer, None, ["label=${nope.x}"])


def test_flags_layer_wins(tmp_path):
    cfg = load_config(Outer, None, ["tags=[a]"], flags={"tags": ["x", "y,z"]})
    assert cfg.tags == ["x", "y,z"]


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_non_mapping_yaml(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at top level"):
        load_config(Outer, y)


def test_split_cli():
    assert split_cli(["a.yaml", "x=1"]) == ("a.yaml", ["x=1"])
    assert split_cli(["x=1"]) == (None, ["x=1"])
    with pytest.raises(ConfigError, match="key=value"):
        split_cli(["a.yaml", "oops"])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(Outer, None, ["inner.width=9"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert "width: 9" in to_yaml(cfg)
    again = load_config(Outer, path)
    assert again == cfg
