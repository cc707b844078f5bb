"""Filter a Stack-format corpus: ``python data_prep/filter_stack.py --input PATH [PATH ...] --output DIR [cfg.yaml] [key=value ...]``."""

import sys

from llmfoundry_lite.config import ConfigError, exit_on_config_error, load_io_config, to_yaml
from llmfoundry_lite.filtering.config import FilterConfig


def parse_args(argv: list[str]) -> FilterConfig:
    """``--input``/``--output`` flags, then an optional YAML file and ``key=value`` overrides."""
    return load_io_config(FilterConfig, argv, __doc__, output_help="output directory (kept/, rejected/, stats.json, report/)")


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
