"""``python scripts/feedback_export.py --db URL --output DIR``: the feedback store as Parquet.

Writes ``DIR/completions.parquet`` and ``DIR/feedback.parquet`` (one row per record; the columns are
``serve/feedback_schema.py``'s) from one consistent snapshot of the store, a page at a time, and prints
the row counts. URL is what the server's ``--feedback-db`` was given: a SQLite file
(``sqlite:///runs/serve/feedback.sqlite``) or any SQLAlchemy URL (``postgresql+psycopg://user@host/db``).
This is what Spark or Databricks analyses read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmfoundry_lite.cli.common import fail, user_errors


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The flags (argparse exits 2 naming a bad one)."""
    p = argparse.ArgumentParser(prog="scripts/feedback_export.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True, help="SQLAlchemy URL of the feedback store (the server's --feedback-db)")
    p.add_argument("--output", required=True, help="directory for completions.parquet and feedback.parquet")
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    """Export the store at ``--db`` to ``--output`` and print what was written."""
    args = parse_args(argv)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, OperationalError

    from llmfoundry_lite.serve.feedback_store import FeedbackStore

    # a bad URL, an unreachable server, a newer schema, an in-memory SQLite: one line naming the problem
    with user_errors(ArgumentError, OperationalError, ValueError):  # ValueError includes SchemaError
        url = make_url(args.db)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
            # opening it would create an empty store, and an export of nothing looks like a success
            fail(f"error: no feedback database at {url.database} (--db {args.db})")
        with FeedbackStore(args.db) as store:
            counts = store.export(args.output)
    out = Path(args.output)
    for table, rows in counts.items():
        print(f"{table}: {rows} rows -> {out / f'{table}.parquet'}")
