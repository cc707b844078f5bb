"""Instruction pairs from documented Python functions, verified by running their doctests and asserts in the sandbox.

``python data_prep/synthesize_instruct.py --input PATH [PATH ...] --output DIR [cfg.yaml] [key=value ...]``
"""

import sys

from llmfoundry_lite.cli.synthesize import main

if __name__ == "__main__":
    main(sys.argv[1:])
