"""Run the whole pipeline on the built-in local corpus and print one summary (``make demo``)."""

import sys

from llmfoundry_lite.demo import main

if __name__ == "__main__":
    main(sys.argv[1:])
