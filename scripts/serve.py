"""Serve a trained model over an OpenAI-style completions API.

    python scripts/serve.py --model PATH [--host 127.0.0.1] [--port 8000] [--backend ours|ct2]
        [--max-batch 8] [--model-name NAME] [--device auto|cpu|cuda] [--ct2-compute-type int8]

PATH is an HF export (directory with config.json), a Composer checkpoint (.pt or sharded
directory) or a training save folder. See ``llmfoundry_lite/serve`` and the README.
"""

import sys

from llmfoundry_lite.cli.serve import main

if __name__ == "__main__":
    main(sys.argv[1:])
