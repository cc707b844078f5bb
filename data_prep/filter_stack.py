"""Filter a Stack-format corpus: ``python data_prep/filter_stack.py --input PATH [PATH ...] --output DIR [cfg.yaml] [key=value ...]``."""

import argparse
import re
import sys

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_config, split_cli, to_yaml
from llmfoundry_lite.filtering.config import FilterConfig

OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def parse_args(argv: list[str]) -> FilterConfig:
    """``--input``/``--output`` flags, then an optional YAML file and ``key=value`` overrides."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", nargs="+", help="Parquet/JSONL(.gz) files, directories of them, or source trees")
    parser.add_argument("--output", help="output directory (kept/, rejected/, stats.json, report/)")
    parser.add_argument("rest", nargs="*", help="[config.yaml] [key=value ...]")
    args, unknown = parser.parse_known_args(argv)
    # `--input a b cfg.yaml k=v` : nargs="+" swallows what follows the paths; hand those back.
    words = list(args.input or [])
    trailing = [w for w in words if OVERRIDE.match(w) or w.endswith((".yaml", ".yml"))]
    args.input = [w for w in words if w not in trailing] or None
    yaml_path, overrides = split_cli(trailing + args.rest + unknown)
    flags = {k: v for k, v in (("input", args.input), ("output", args.output)) if v is not None}
    return load_config(FilterConfig, yaml_path, overrides, flags=flags)


def main(argv: list[str]) -> None:
    try:
        cfg = parse_args(argv)
    except ConfigError as err:
        exit_on_config_error(err)
    print(to_yaml(cfg), end="")
    from llmfoundry_lite.corpus.readers import InputError
    from llmfoundry_lite.filtering.pipeline import OutputDirError, run_filter
    from llmfoundry_lite.filtering.report import format_headline

    try:
        stats = run_filter(cfg)
    except (InputError, OutputDirError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(format_headline(stats))
    print(f"wrote {cfg.output}/kept, {cfg.output}/rejected, {cfg.output}/stats.json"
          + (f", {cfg.output}/report" if cfg.report else ""))
    if "published" in stats:
        counts = stats["published"]
        print(f"published from staging: uploaded {counts['uploaded']}, unchanged {counts['unchanged']}, "
              f"deleted {counts['deleted']}")


if __name__ == "__main__":
    main(sys.argv[1:])
