"""Typed configuration: YAML + dotted CLI overrides merged onto dataclass schemas.

Every command (data prep, training, evaluation) describes its options as a tree of
dataclasses. ``load_config`` merges the schema's defaults, an optional YAML file and
``key=value`` overrides with omegaconf, so a misspelled key or a wrong type anywhere
in the tree fails immediately with the full dotted key and the valid keys of that
section. ``${...}`` interpolations resolve against the merged tree. ``__post_init__``
of each dataclass then validates values.

This module imports only the standard library and omegaconf: it must stay cheap so
that a bad config fails in well under a second, before torch or composer load.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message names the key."""


def _valid_keys(object_type: Any) -> list[str]:
    if dataclasses.is_dataclass(object_type):
        return sorted(f.name for f in dataclasses.fields(object_type))
    return []


def _explain(err: OmegaConfBaseException, source: str) -> ConfigError:
    """Turn an omegaconf exception into a one-paragraph, user-facing message."""
    full_key = getattr(err, "full_key", None) or "<root>"
    section = full_key.rsplit(".", 1)[0] if "." in full_key else "<top level>"
    first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, ConfigKeyError):
        keys = _valid_keys(getattr(err, "object_type", None))
        hint = re.search(r"Did you mean(?: one of)?: (.*?)\??$", first_line)
        msg = f"unknown config key {full_key!r} in {source}"
        if hint:
            msg += f" (did you mean {hint.group(1)}?)"
        msg += f"; valid keys of {section}: {', '.join(keys) if keys else '(none)'}"
        return ConfigError(msg)
    if isinstance(err, MissingMandatoryValue):
        return ConfigError(f"config key {full_key!r} is required but was not set ({source}); pass {full_key}=...")
    if isinstance(err, InterpolationResolutionError):
        return ConfigError(f"cannot resolve interpolation at {full_key!r} ({source}): {first_line}")
    if isinstance(err, ValidationError):
        return ConfigError(f"bad value for config key {full_key!r} ({source}): {first_line}")
    return ConfigError(f"config error at {full_key!r} ({source}): {first_line}")


def _load_yaml(path: str | Path) -> DictConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    loaded = OmegaConf.load(p)
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"config file {p} must hold a mapping at top level, got {type(loaded).__name__}")
    return loaded


def load_config(
    schema: type[T],
    yaml_path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
) -> T:
    """Build a validated ``schema`` instance from defaults, a YAML file and overrides.

    ``overrides`` are omegaconf dotlist items such as ``model.n_layers=4``; ``flags``
    holds values from named command-line flags (``--input``), applied last. Raises
    ``ConfigError`` naming the full dotted key on unknown keys, wrong types, missing
    mandatory values or unresolvable interpolations; ``__post_init__`` checks of the
    dataclasses raise ``ValueError`` which is re-raised as ``ConfigError``.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
    layers: list[tuple[str, DictConfig]] = []
    if yaml_path is not None:
        layers.append((str(yaml_path), _load_yaml(yaml_path)))
    if overrides:
        layers.append(("command-line overrides", OmegaConf.from_dotlist(list(overrides))))
    if flags:
        layers.append(("command-line flags", OmegaConf.create(flags)))
    cfg = OmegaConf.structured(schema)
    for source, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as err:
            raise _explain(err, source) from None
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise _explain(err, "merged config") from None
    except ValueError as err:  # __post_init__ validation
        raise ConfigError(str(err)) from None
    return obj  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML, for printing and saving next to run outputs."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config to ``path`` (parents created) and return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(to_yaml(cfg))
    return p


def split_cli(args: list[str]) -> tuple[str | None, list[str]]:
    """Split positional CLI words into an optional YAML path and ``key=value`` overrides.

    The YAML path, if given, must come first and end in ``.yaml``/``.yml``.
    """
    yaml_path: str | None = None
    rest = list(args)
    if rest and rest[0].endswith((".yaml", ".yml")) and "=" not in rest[0]:
        yaml_path = rest.pop(0)
    bad = [a for a in rest if "=" not in a]
    if bad:
        raise ConfigError(f"expected key=value overrides after the optional YAML file, got {bad}")
    return yaml_path, rest


OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def load_io_config(schema: type[T], argv: list[str], description: str, usage: str | None = None,
                   input_help: str = "Parquet/JSONL(.gz) files, directories of them, or source trees",
                   output_help: str = "output directory") -> T:
    """``--input PATH... --output DIR [cfg.yaml] [key=value ...]`` → a validated ``schema`` (the data commands).

    ``--input``'s ``nargs="+"`` swallows whatever follows the paths; a trailing YAML file or
    ``key=value`` override is handed back to the config layers.
    """
    import argparse

    parser = argparse.ArgumentParser(description=description, usage=usage)
    parser.add_argument("--input", nargs="+", help=input_help)
    parser.add_argument("--output", help=output_help)
    parser.add_argument("rest", nargs="*", help="[config.yaml] [key=value ...]")
    args, unknown = parser.parse_known_args(argv)
    words = list(args.input or [])
    trailing = [w for w in words if OVERRIDE.match(w) or w.endswith((".yaml", ".yml"))]
    inputs = [w for w in words if w not in trailing] or None
    yaml_path, overrides = split_cli(trailing + args.rest + unknown)
    flags = {k: v for k, v in (("input", inputs), ("output", args.output)) if v is not None}
    return load_config(schema, yaml_path, overrides, flags=flags)
