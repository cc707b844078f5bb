"""Training data from what users did with completions: SFT rows, preference pairs and unpaired rows.

``python data_prep/feedback_to_train.py (--input DIR | --db URL) --output DIR [cfg.yaml] [key=value ...]``
"""

import sys

from llmfoundry_lite.cli.feedback_to_train import main

if __name__ == "__main__":
    main(sys.argv[1:])
