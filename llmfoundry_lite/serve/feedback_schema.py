"""The feedback store's tables, declared once: the SQL side (SQLAlchemy Core) and the Parquet/Arrow side.

``completions`` holds one row per completion response, ``feedback`` one row per (completion_id, choice,
event); the column names and meanings are the interface the dashboard, the export and
``data_prep/feedback_to_train.py`` read. ``meta`` holds the schema version and the salt with which every
replica hashes user ids, so they are the same in one database whichever replica wrote them.

A change to the SQL tables raises ``SCHEMA_VERSION``; a store refuses a database written by a newer one.
``make_engine`` opens a database: SQLite with WAL, full sync, a busy timeout and foreign keys on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url

SCHEMA_VERSION = 1
"""Version of the SQL tables below; stored in ``meta`` when a database is created."""

EVENTS = ("shown", "accepted", "rejected", "edited")
"""What a user did with a choice; ``edited`` may carry the text the user kept."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another connection's write lock before failing."""

WRITE_OPTION = "feedback_store_write"
"""Execution option marking a connection whose transaction writes (SQLite: ``BEGIN IMMEDIATE``)."""

ASSIGNMENTS = ("requested", "ab", "default")
"""How a completion's variant was chosen: the client named it, the ``--ab`` split, or no split at all."""

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""``schema_version`` and ``salt``: one row each, inserted once by the first store that opens the database."""

completions = Table(
    "completions", metadata,
    Column("id", String(128), primary_key=True),
    Column("created", Double, nullable=False),
    Column("model", Text, nullable=False),
    Column("assignment", String(16), nullable=False),
    Column("user_hash", String(64)),
    Column("language", String(32), nullable=False),
    Column("n_choices", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("suffix_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("ttft_ms", Double),
    Column("finish_reasons", Text, nullable=False),
    Column("prompt_text", Text),
    Column("suffix_text", Text),
    Column("texts", Text),  # a JSON list of strings: portable across SQLite and PostgreSQL
    # (created, id): the order the export pages in, and what retention and `since` select on
    Index("ix_completions_created_id", "created", "id"),
)

feedback = Table(
    "feedback", metadata,
    # a surrogate key (SQLite's rowid, PostgreSQL's bigserial) gives the export a cheap order to page in
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("completion_id", String(128), ForeignKey("completions.id", ondelete="CASCADE"), nullable=False),
    Column("choice", Integer, nullable=False),
    Column("event", String(16), nullable=False),
    Column("text", Text),
    Column("user_hash", String(64)),
    Column("created", Double, nullable=False),
    # idempotency: a repeat of the same triple is a no-op (its index also serves lookups by completion)
    UniqueConstraint("completion_id", "choice", "event", name="uq_feedback_triple"),
)

COMPLETIONS_ARROW = pa.schema([
    ("id", pa.string()),
    ("created", pa.float64()),
    ("model", pa.string()),
    ("assignment", pa.string()),
    ("user_hash", pa.string()),
    ("language", pa.string()),
    ("n_choices", pa.int32()),
    ("prompt_tokens", pa.int32()),
    ("suffix_tokens", pa.int32()),
    ("completion_tokens", pa.int32()),
    ("latency_ms", pa.float64()),
    ("ttft_ms", pa.float64()),
    ("finish_reasons", pa.string()),
    ("prompt_text", pa.string()),
    ("suffix_text", pa.string()),
    ("texts", pa.list_(pa.string())),
])
"""The ``completions`` table as ``FeedbackStore.tables()`` and ``completions.parquet`` give it."""

FEEDBACK_ARROW = pa.schema([
    ("completion_id", pa.string()),
    ("choice", pa.int32()),
    ("event", pa.string()),
    ("text", pa.string()),
    ("user_hash", pa.string()),
    ("created", pa.float64()),
])
"""The ``feedback`` table as ``FeedbackStore.tables()`` and ``feedback.parquet`` give it (no ``seq``)."""


def completion_columns() -> list[Column]:
    """The SQL columns of ``completions`` in ``COMPLETIONS_ARROW`` order."""
    return [completions.c[name] for name in COMPLETIONS_ARROW.names]


def feedback_columns() -> list[Column]:
    """The SQL columns of ``feedback`` in ``FEEDBACK_ARROW`` order."""
    return [feedback.c[name] for name in FEEDBACK_ARROW.names]


def completions_batch(rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """One Arrow batch from ``completions`` rows selected with ``completion_columns()``; ``texts``
    goes from its JSON text back to a list of strings."""
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in COMPLETIONS_ARROW]
    texts = COMPLETIONS_ARROW.get_field_index("texts")
    columns[texts] = [None if t is None else json.loads(t) for t in columns[texts]]
    return pa.RecordBatch.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, COMPLETIONS_ARROW, strict=True)],
        schema=COMPLETIONS_ARROW)


def feedback_batch(rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """One Arrow batch from ``feedback`` rows selected with ``feedback_columns()``."""
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in FEEDBACK_ARROW]
    return pa.RecordBatch.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, FEEDBACK_ARROW, strict=True)],
        schema=FEEDBACK_ARROW)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # SQLAlchemy's "begin" hook below emits BEGIN itself, so writes can take the lock up front
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: switching to WAL may wait too
    # WAL: readers (the dashboard, an export) never block the server's writers, nor they them
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL fsyncs the WAL at every commit. WAL's usual NORMAL only syncs at checkpoints, so a commit the
    # server already acknowledged could vanish in a power cut or OS crash; acknowledged must mean durable.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite; feedback must name a completion
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once (no busy wait) when another writer
    # committed in between; IMMEDIATE takes the write lock first, waiting up to the busy timeout.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite files get the pragmas and locking above; other databases get
    connections checked before use (a replica outlives a database restart)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory":
        raise ValueError(f"feedback db {url!r}: an in-memory SQLite database is not shared between connections; "
                         "give a file, e.g. sqlite:///runs/feedback.sqlite")
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine
