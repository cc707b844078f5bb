"""The loop from users back to training, simulated on this machine.

    python scripts/feedback_loop.py [--base runs/code-tiny] [--variant sft=runs/code-tiny-lora]
        [--users 32] [--requests 8] [--out runs/feedback-loop]

Needs the demo's outputs (`make demo`). See ``llmfoundry_lite/cli/feedback_loop.py`` and docs/feedback.md.
"""

import sys

from llmfoundry_lite.cli.feedback_loop import main

if __name__ == "__main__":
    main(sys.argv[1:])
