"""The feedback store: every completion the server returned and what users did with it, in SQL.

SQLite by default (``default_url``: one file, nothing to start); any SQLAlchemy URL otherwise, e.g.
``postgresql+psycopg://user@host/db`` for several server replicas writing to one database. The tables
(``feedback_schema``) are created when absent and carry a schema version; a database written by a newer
version is refused. A call that returns has committed: nothing acknowledged is lost to a crash. User
ids are stored as a salted SHA-256, with one salt per database, so replicas hash a user the same way.

Every method may be called from many threads at once (the server calls it from its worker threads):
each call takes its own pooled connection and transaction. ``tables()`` gives the rows as Arrow tables
(the dashboard), ``export()`` writes them as Parquet in pages (what Spark or Databricks reads).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Table, delete, func, inspect, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, ProgrammingError

from llmfoundry_lite.serve.feedback_schema import (
    ASSIGNMENTS,
    COMPLETIONS_ARROW,
    EVENTS,
    FEEDBACK_ARROW,
    SCHEMA_VERSION,
    WRITE_OPTION,
    completion_columns,
    completions,
    completions_batch,
    feedback,
    feedback_batch,
    feedback_columns,
    make_engine,
    meta,
    metadata,
)

__all__ = ["EVENTS", "BadFeedback", "CompletionRecord", "FeedbackEvent", "FeedbackStore", "SchemaError",
           "UnknownCompletion", "default_url"]

_PG_SETUP_LOCK = 0x6C6C6D66656564  # pg_advisory_xact_lock key: replicas starting at once create tables in turn


class UnknownCompletion(LookupError):
    """Feedback for a completion id the store does not hold (never returned, or purged by retention)."""


class BadFeedback(ValueError):
    """A feedback event that cannot be stored; ``field`` names the offending FeedbackEvent field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class SchemaError(ValueError):
    """The database's schema version is not the one this code reads and writes (a ValueError, like a
    manifest that does not match: the commands report it as a user error, naming the database)."""


@dataclass(frozen=True)
class CompletionRecord:
    """One completion response, as the server returned it; ``user`` is raw and the store hashes it."""

    id: str
    created: float
    model: str
    assignment: str
    user: str | None
    language: str
    n_choices: int
    prompt_tokens: int
    suffix_tokens: int
    completion_tokens: int
    latency_ms: float
    ttft_ms: float | None
    finish_reasons: tuple[str | None, ...]
    """One per choice, in choice order; stored comma-joined (None as an empty string)."""
    prompt_text: str | None = None
    suffix_text: str | None = None
    texts: tuple[str, ...] | None = None
    """The choice texts in choice order, only when the server records texts (already PII-scrubbed)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id: a completion needs a non-empty string id, got {self.id!r}")
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f"assignment: {self.assignment!r} is not one of {', '.join(ASSIGNMENTS)}")
        if self.n_choices < 1:
            raise ValueError(f"n_choices: a completion has at least one choice, got {self.n_choices}")
        for name in ("prompt_tokens", "suffix_tokens", "completion_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: a token count cannot be negative, got {getattr(self, name)}")
        if len(self.finish_reasons) != self.n_choices:
            raise ValueError(f"finish_reasons: {len(self.finish_reasons)} reasons for {self.n_choices} choices")
        if any(r and "," in r for r in self.finish_reasons):
            raise ValueError(f"finish_reasons: a reason cannot contain ',' (they are stored comma-joined): "
                             f"{self.finish_reasons}")
        if self.texts is not None and len(self.texts) != self.n_choices:
            raise ValueError(f"texts: {len(self.texts)} texts for {self.n_choices} choices")


@dataclass(frozen=True)
class FeedbackEvent:
    """What a user did with one choice of a completion. Checked by ``FeedbackStore.record_feedback``
    (not here), so a request body can be turned into an event first and every error comes from one place."""

    completion_id: str
    choice: int
    event: str
    """One of ``EVENTS``."""
    text: str | None = None
    """For ``edited`` only: the text the user kept (already PII-scrubbed; None when texts are not recorded)."""
    user: str | None = None
    created: float | None = None
    """Unix seconds; None: when the store records it."""


def default_url(directory: Path | str) -> str:
    """The default store: ``sqlite:///<directory>/feedback.sqlite`` (absolute)."""
    return f"sqlite:///{Path(directory).resolve() / 'feedback.sqlite'}"


def check_event(ev: FeedbackEvent) -> None:
    """Raise ``BadFeedback`` naming the field for an event no completion could accept (the choice's upper
    bound needs the completion, so ``record_feedback`` checks it)."""
    if not isinstance(ev.completion_id, str) or not ev.completion_id:
        raise BadFeedback("completion_id", f"a completion id is a non-empty string, got {ev.completion_id!r}")
    if ev.event not in EVENTS:
        raise BadFeedback("event", f"{ev.event!r} is not one of {', '.join(EVENTS)}")
    if isinstance(ev.choice, bool) or not isinstance(ev.choice, int) or ev.choice < 0:
        raise BadFeedback("choice", f"a choice index is an integer >= 0, got {ev.choice!r}")
    if ev.text is not None and not isinstance(ev.text, str):
        raise BadFeedback("text", f"text is a string, got {type(ev.text).__name__}")
    if ev.text is not None and ev.event != "edited":
        raise BadFeedback("text", f"only an 'edited' event carries text, not {ev.event!r}")
    if ev.user is not None and not isinstance(ev.user, str):
        raise BadFeedback("user", f"a user id is a string, got {type(ev.user).__name__}")
    if ev.created is not None and (isinstance(ev.created, bool) or not isinstance(ev.created, int | float)
                                   or not math.isfinite(ev.created)):
        raise BadFeedback("created", f"created is unix seconds, got {ev.created!r}")


class FeedbackStore:
    """Completions and feedback in the database at ``url``; see the module docstring."""

    SCHEMA_VERSION: int = SCHEMA_VERSION
    PAGE_ROWS: int = 5_000
    """Rows per page when reading for ``tables``/``export`` and per transaction in ``purge``."""

    def __init__(self, url: str, retention_days: float | None = None) -> None:
        if retention_days is not None and not retention_days > 0:
            raise ValueError(f"retention_days: must be > 0 (or None to keep everything), got {retention_days}")
        self.url = url
        self.retention_days = retention_days
        self._engine = make_engine(url)
        self._dialect = self._engine.dialect.name
        try:
            self._salt = self._setup()
        except BaseException:
            self._engine.dispose()
            raise

    @contextmanager
    def _transaction(self, write: bool = False, snapshot: bool = False) -> Iterator[Connection]:
        """One transaction on a pooled connection, committed when the block ends without an exception.
        ``snapshot``: every read sees the same state (SQLite's deferred transactions already do)."""
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: write})
            if snapshot and self._dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _setup(self) -> str:
        """Create the tables and meta rows if absent, check the schema version; return the salt."""
        for attempt in range(2):
            try:
                with self._transaction(write=True) as conn:
                    if self._dialect == "postgresql":
                        conn.execute(select(func.pg_advisory_xact_lock(_PG_SETUP_LOCK)))
                    if inspect(conn).has_table(meta.name):
                        self._check_version(conn)  # before create_all: a newer schema may differ in tables
                    metadata.create_all(conn, checkfirst=True)
                    self._insert_new(conn, meta, {"key": "schema_version", "value": str(SCHEMA_VERSION)})
                    self._insert_new(conn, meta, {"key": "salt", "value": secrets.token_hex(16)})
                    self._check_version(conn)
                    return conn.execute(select(meta.c.value).where(meta.c.key == "salt")).scalar_one()
            except (IntegrityError, ProgrammingError):
                # only where no lock serialises replicas (not SQLite, not PostgreSQL): another one created
                # a table or a meta row between our check and our write; the second try sees it
                if attempt:
                    raise
        raise AssertionError("unreachable: the loop returns or raises")

    def _check_version(self, conn: Connection) -> None:
        found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one_or_none()
        if found is None:
            return
        if int(found) > SCHEMA_VERSION:
            raise SchemaError(f"feedback db {self.url!r} has schema version {found}, newer than this code's "
                              f"{SCHEMA_VERSION}: upgrade llmfoundry_lite, or use another database")
        if int(found) < SCHEMA_VERSION:  # no older version exists yet; a migration goes here when one does
            raise SchemaError(f"feedback db {self.url!r} has schema version {found} and no migration to "
                              f"{SCHEMA_VERSION} exists")

    def _insert_new(self, conn: Connection, table: Table, row: dict[str, Any]) -> bool:
        """Insert ``row`` unless a row with the same unique key exists; True when inserted. A unique
        conflict is not an error here; any other integrity error (a missing completion) still raises."""
        keys = {"meta": ["key"], "completions": ["id"], "feedback": ["completion_id", "choice", "event"]}[table.name]
        if self._dialect in ("sqlite", "postgresql"):
            dialect_insert = sqlite.insert if self._dialect == "sqlite" else postgresql.insert
            # RETURNING, not rowcount: SQLAlchemy's psycopg dialect reports -1 for single-row inserts
            stmt = (dialect_insert(table).values(row).on_conflict_do_nothing(index_elements=keys)
                    .returning(table.c[keys[0]]))
            return conn.execute(stmt).first() is not None
        savepoint = conn.begin_nested()
        try:
            conn.execute(table.insert().values(row))
        except IntegrityError:
            savepoint.rollback()
            clash = select(func.count()).select_from(table).where(*(table.c[k] == row[k] for k in keys))
            if conn.execute(clash).scalar_one():
                return False
            raise
        savepoint.commit()
        return True

    def user_hash(self, user: str | None) -> str | None:
        """The stored form of a user id: SHA-256 of this database's salt and the id (None stays None)."""
        return None if user is None else hashlib.sha256(f"{self._salt}:{user}".encode()).hexdigest()

    def record_completion(self, rec: CompletionRecord) -> None:
        """Store one completion; committed (durable) when this returns. A repeated id is a ValueError."""
        row = {
            "id": rec.id, "created": float(rec.created), "model": rec.model, "assignment": rec.assignment,
            "user_hash": self.user_hash(rec.user), "language": rec.language, "n_choices": rec.n_choices,
            "prompt_tokens": rec.prompt_tokens, "suffix_tokens": rec.suffix_tokens,
            "completion_tokens": rec.completion_tokens, "latency_ms": float(rec.latency_ms),
            "ttft_ms": None if rec.ttft_ms is None else float(rec.ttft_ms),
            "finish_reasons": ",".join(r or "" for r in rec.finish_reasons),
            "prompt_text": rec.prompt_text, "suffix_text": rec.suffix_text,
            "texts": None if rec.texts is None else json.dumps(list(rec.texts), ensure_ascii=False),
        }
        with self._transaction(write=True) as conn:
            inserted = self._insert_new(conn, completions, row)
        if not inserted:
            raise ValueError(f"id: completion {rec.id!r} is already recorded")

    def record_feedback(self, ev: FeedbackEvent) -> bool:
        """Store one event; True if new, False if (completion_id, choice, event) was already stored.
        Committed when this returns. Raises ``BadFeedback`` (naming the field) or ``UnknownCompletion``."""
        check_event(ev)
        row = {"completion_id": ev.completion_id, "choice": ev.choice, "event": ev.event, "text": ev.text,
               "user_hash": self.user_hash(ev.user), "created": time.time() if ev.created is None else ev.created}
        unknown = UnknownCompletion(f"completion_id: no completion {ev.completion_id!r} in the feedback store "
                                    "(never returned by this service, or removed by retention)")
        try:
            with self._transaction(write=True) as conn:
                n_choices = conn.execute(
                    select(completions.c.n_choices).where(completions.c.id == ev.completion_id)).scalar_one_or_none()
                if n_choices is None:
                    raise unknown
                if ev.choice >= n_choices:
                    raise BadFeedback("choice", f"completion {ev.completion_id!r} has {n_choices} choice(s), "
                                                f"so 0 <= choice < {n_choices}; got {ev.choice}")
                return self._insert_new(conn, feedback, row)
        except IntegrityError as err:
            # PostgreSQL (read committed): a purge removed the completion between our lookup and insert
            with self._transaction() as conn:
                gone = conn.execute(select(completions.c.id).where(completions.c.id == ev.completion_id)).first() is None
            if gone:
                raise unknown from err
            raise

    def _completion_batches(self, conn: Connection, since: float | None) -> Iterator[pa.RecordBatch]:
        """``completions`` (created >= since) as Arrow batches, paged by (created, id)."""
        c = completions.c
        last: tuple[float, str] | None = None
        while True:
            query = select(*completion_columns()).order_by(c.created, c.id).limit(self.PAGE_ROWS)
            if since is not None:
                query = query.where(c.created >= since)
            if last is not None:
                query = query.where(tuple_(c.created, c.id) > tuple_(*last))
            rows = conn.execute(query).all()
            if rows:
                yield completions_batch(rows)
                last = (rows[-1].created, rows[-1].id)
            if len(rows) < self.PAGE_ROWS:
                return

    def _feedback_batches(self, conn: Connection, since: float | None) -> Iterator[pa.RecordBatch]:
        """``feedback`` (of completions created >= since) as Arrow batches, paged by insertion order."""
        last = 0
        while True:
            query = (select(*feedback_columns(), feedback.c.seq).where(feedback.c.seq > last)
                     .order_by(feedback.c.seq).limit(self.PAGE_ROWS))
            if since is not None:
                query = query.join(completions, completions.c.id == feedback.c.completion_id).where(
                    completions.c.created >= since)
            rows = conn.execute(query).all()
            if rows:
                yield feedback_batch([row[:-1] for row in rows])
                last = rows[-1].seq
            if len(rows) < self.PAGE_ROWS:
                return

    def tables(self, since: float | None = None) -> tuple[pa.Table, pa.Table]:
        """(completions, feedback) as Arrow tables with the ``feedback_schema`` columns, from one snapshot.
        ``since``: only completions created at or after it, and the feedback on those completions."""
        with self._transaction(snapshot=True) as conn:
            comp = pa.Table.from_batches(list(self._completion_batches(conn, since)), schema=COMPLETIONS_ARROW)
            fb = pa.Table.from_batches(list(self._feedback_batches(conn, since)), schema=FEEDBACK_ARROW)
        return comp, fb

    def export(self, out_dir: Path | str) -> dict[str, int]:
        """Write ``completions.parquet`` and ``feedback.parquet`` under ``out_dir`` from one snapshot, a page
        at a time; return the row counts ``{"completions": n, "feedback": m}``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with self._transaction(snapshot=True) as conn:
            return {
                "completions": _write_parquet(out / "completions.parquet", COMPLETIONS_ARROW,
                                              self._completion_batches(conn, None)),
                "feedback": _write_parquet(out / "feedback.parquet", FEEDBACK_ARROW,
                                           self._feedback_batches(conn, None)),
            }

    def purge(self, now: float | None = None) -> int:
        """Delete completions created more than ``retention_days`` before ``now`` (default: the clock) and
        their feedback, ``PAGE_ROWS`` completions per transaction so writers are never held up for long.
        Returns the rows removed (completions + feedback); 0 without a retention setting."""
        if self.retention_days is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention_days * 86_400
        removed = 0
        while True:
            with self._transaction(write=True) as conn:
                ids = conn.execute(select(completions.c.id).where(completions.c.created < cutoff)
                                   .limit(self.PAGE_ROWS)).scalars().all()
                if not ids:
                    return removed
                # the cascade on feedback.completion_id would do this too; deleting first counts the rows
                removed += conn.execute(delete(feedback).where(feedback.c.completion_id.in_(ids))).rowcount
                removed += conn.execute(delete(completions).where(completions.c.id.in_(ids))).rowcount

    def close(self) -> None:
        """Close the pooled connections (SQLite folds its WAL back into the database file)."""
        self._engine.dispose()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_parquet(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Write ``batches`` to ``path`` via a hidden partial file renamed at the end (a reader never sees half a
    file; Spark skips dot-files); return the row count."""
    partial = path.with_name(f".{path.name}.partial")
    rows = 0
    with pq.ParquetWriter(partial, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    os.replace(partial, path)
    return rows
