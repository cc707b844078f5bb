"""Filter a Stack-format corpus: ``python data_prep/filter_stack.py --input PATH [PATH ...] --output DIR [cfg.yaml] [key=value ...]``."""

import sys

from llmfoundry_lite.cli.filter import main

if __name__ == "__main__":
    main(sys.argv[1:])
