"""Corpus → filter → vocabulary → MDS shards: ``python data_prep/shard_stack.py [yamls/data/<name>.yaml] [key=value ...]``.

Without a YAML file the CPU demo config ``yamls/data/local.yaml`` is used.
"""

import sys

from llmfoundry_lite.cli.shards import main

if __name__ == "__main__":
    main(sys.argv[1:])
