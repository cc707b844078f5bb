"""Build the local Stack-format corpus: ``python data_prep/make_local_stack.py [cfg.yaml] [key=value ...]``."""

import sys

from llmfoundry_lite.cli.local_stack import main

if __name__ == "__main__":
    main(sys.argv[1:])
