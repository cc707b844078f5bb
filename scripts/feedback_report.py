"""Write the feedback dashboard to a file and print acceptance per variant with the A/B p-values.

    python scripts/feedback_report.py (--input DIR | --db URL) --output report.html [--baseline NAME]

DIR is a Parquet export (completions.parquet, feedback.parquet: scripts/feedback_export.py writes it);
URL is the feedback store the server records into (--feedback-db). See llmfoundry_lite/cli/feedback_report.py.
"""

import sys

from llmfoundry_lite.cli.feedback_report import main

if __name__ == "__main__":
    main(sys.argv[1:])
