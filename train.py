"""Train a code LLM: ``composer train.py yamls/<name>.yaml [key=value ...]`` (or ``python train.py``).

A config with a top-level ``base`` fine-tunes instead. The command is ``llmfoundry_lite/cli/train.py``.
"""

import sys

from llmfoundry_lite.cli.train import main

if __name__ == "__main__":
    main(sys.argv[1:])
