"""Train the code vocabulary: ``python data_prep/train_tokenizer.py [cfg.yaml] [--input PATH ...] [--output DIR] [key=value ...]``."""

import sys

from llmfoundry_lite.cli.tokenizer import main

if __name__ == "__main__":
    main(sys.argv[1:])
