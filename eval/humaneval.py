"""HumanEval pass@k in a bubblewrap sandbox: ``python eval/humaneval.py --samples FILE.jsonl`` or ``--model PATH``.

See ``llmfoundry_lite/cli/humaneval.py`` for the options; ``--help`` lists them.
"""

import sys

from llmfoundry_lite.cli.humaneval import main

if __name__ == "__main__":
    main(sys.argv[1:])
