"""``python data_prep/make_local_stack.py [cfg.yaml] [key=value ...]``: the local Stack-format corpus.

The Stack cannot be downloaded here, so source trees already on this machine (or the ``roots`` given)
become Parquet shards in its schema; see ``llmfoundry_lite/corpus/local_stack.py``.
"""

from __future__ import annotations

import os

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.config import load_config, split_cli, to_yaml
from llmfoundry_lite.corpus.local_stack import LocalStackConfig, build_local_stack, format_summary


def check_roots(roots: list[str]) -> None:
    """A root the user named must exist: say which one is missing before anything is walked."""
    for root in roots:
        if not os.path.exists(root):
            raise FileNotFoundError(f"root not found: {root}")


def main(argv: list[str]) -> None:
    """Build (or reuse) the corpus and print where it is and what it holds."""
    with user_errors():
        yaml_path, overrides = split_cli(argv)
        cfg = load_config(LocalStackConfig, yaml_path, overrides)
    print(to_yaml(cfg), end="")
    with user_errors(FileExistsError):  # an output built with another config: the message names the fix
        check_roots(cfg.roots)
        manifest = build_local_stack(cfg)
    state = "reused existing corpus" if manifest["reused"] else "built corpus"
    print(f"{state} at {cfg.output} ({len(manifest['shards'])} shard(s))")
    print(format_summary(manifest))
