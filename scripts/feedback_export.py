"""Export the serving feedback store (completions and what users did with them) as Parquet.

    python scripts/feedback_export.py --db URL --output DIR

URL is the server's ``--feedback-db`` (a SQLite file ``sqlite:///PATH`` or e.g. ``postgresql+psycopg://user@host/db``);
DIR gets completions.parquet and feedback.parquet, one row per record. See ``llmfoundry_lite/cli/feedback_export.py``.
"""

import sys

from llmfoundry_lite.cli.feedback_export import main

if __name__ == "__main__":
    main(sys.argv[1:])
