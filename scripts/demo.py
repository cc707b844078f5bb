"""Run the whole pipeline on the built-in local corpus and print one summary (``make demo``): ``python scripts/demo.py``."""

import sys

from llmfoundry_lite.cli.demo import main

if __name__ == "__main__":
    main(sys.argv[1:])
