"""The feedback store against SQLite (a file) and a real PostgreSQL server (``tests/serve/postgres.py``).

Every ``db_url`` test runs on both: records and events come back with their values, feedback is
idempotent, bad input names its field, user ids are stored only hashed (one salt per database), a newer
schema is refused, retention purges, the Parquet export has the interface's columns and types, and
concurrent writers (threads, two replicas, replicas starting at once) lose nothing. A child process
killed with SIGKILL mid-load leaves every record it acknowledged in the database.
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, delete, event, select, update
from sqlalchemy.exc import IntegrityError

from llmfoundry_lite.serve.feedback_schema import COMPLETIONS_ARROW, FEEDBACK_ARROW, completions, feedback, meta
from llmfoundry_lite.serve.feedback_store import (
    BadFeedback,
    CompletionRecord,
    FeedbackEvent,
    FeedbackStore,
    SchemaError,
    UnknownCompletion,
    default_url,
)
from tests.serve.postgres import postgres_server

REPO = Path(__file__).resolve().parents[2]
NOW = 1_760_000_000.0
RAW_USER = "alice.raw-user-id@example.com"


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the whole test session; each test gets its own database on it."""
    with postgres_server() as pg:
        yield pg


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``db_url`` runs each test on SQLite and on PostgreSQL, ``pg_url`` on PostgreSQL only. Under ``make
    test`` (pytest-xdist, loadgroup) the PostgreSQL cases share one worker, so the session starts one server."""
    pg_marks = [pytest.mark.xdist_group("postgres")] if metafunc.config.pluginmanager.hasplugin("xdist") else []
    for name, backends in (("db_url", ("sqlite", "postgresql")), ("pg_url", ("postgresql",))):
        if name in metafunc.fixturenames:
            params = [pytest.param(b, marks=pg_marks if b == "postgresql" else []) for b in backends]
            metafunc.parametrize(name, params, indirect=True)


def _fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in ``tmp_path`` or a new database on the session's server."""
    if request.param == "sqlite":
        return default_url(tmp_path)
    return request.getfixturevalue("pg_server").create_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _fresh_database(request, tmp_path)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _fresh_database(request, tmp_path)


@pytest.fixture
def store(db_url: str):
    with FeedbackStore(db_url) as s:
        yield s


def record(i: int | str, n_choices: int = 2, created: float = NOW, user: str | None = RAW_USER,
           texts: bool = False, model: str = "base", language: str = "python") -> CompletionRecord:
    return CompletionRecord(
        id=f"cmpl-{i}", created=created, model=model, assignment="ab", user=user, language=language,
        n_choices=n_choices, prompt_tokens=11, suffix_tokens=3, completion_tokens=7 * n_choices,
        latency_ms=123.5, ttft_ms=20.25 if texts else None, finish_reasons=("stop",) * (n_choices - 1) + ("length",),
        prompt_text="def add(a, b):\n" if texts else None, suffix_text="\n" if texts else None,
        texts=tuple(f"    return a + b  # {k}" for k in range(n_choices)) if texts else None)


def test_round_trip(store: FeedbackStore) -> None:
    store.record_completion(record(1, n_choices=3, texts=True, created=NOW + 1))
    store.record_completion(record(2, n_choices=1, user=None, created=NOW, model="dpo", language="rust"))
    assert store.record_feedback(FeedbackEvent("cmpl-1", 2, "edited", text="return a+b", user=RAW_USER, created=NOW + 5))
    assert store.record_feedback(FeedbackEvent("cmpl-2", 0, "rejected", created=NOW + 6))
    before = time.time()
    assert store.record_feedback(FeedbackEvent("cmpl-1", 0, "shown"))  # created: the store's clock

    comp, fb = store.tables()
    assert comp.schema == COMPLETIONS_ARROW and fb.schema == FEEDBACK_ARROW
    alice = store.user_hash(RAW_USER)
    assert len(alice) == 64 and int(alice, 16) >= 0
    assert comp.to_pylist() == [  # ordered by created
        {"id": "cmpl-2", "created": NOW, "model": "dpo", "assignment": "ab", "user_hash": None, "language": "rust",
         "n_choices": 1, "prompt_tokens": 11, "suffix_tokens": 3, "completion_tokens": 7, "latency_ms": 123.5,
         "ttft_ms": None, "finish_reasons": "length", "prompt_text": None, "suffix_text": None, "texts": None},
        {"id": "cmpl-1", "created": NOW + 1, "model": "base", "assignment": "ab", "user_hash": alice,
         "language": "python", "n_choices": 3, "prompt_tokens": 11, "suffix_tokens": 3, "completion_tokens": 21,
         "latency_ms": 123.5, "ttft_ms": 20.25, "finish_reasons": "stop,stop,length", "prompt_text": "def add(a, b):\n",
         "suffix_text": "\n", "texts": ["    return a + b  # 0", "    return a + b  # 1", "    return a + b  # 2"]},
    ]
    rows = fb.to_pylist()
    assert rows[:2] == [
        {"completion_id": "cmpl-1", "choice": 2, "event": "edited", "text": "return a+b", "user_hash": alice,
         "created": NOW + 5},
        {"completion_id": "cmpl-2", "choice": 0, "event": "rejected", "text": None, "user_hash": None,
         "created": NOW + 6},
    ]
    assert rows[2]["event"] == "shown" and before <= rows[2]["created"] <= time.time()
    since_comp, since_fb = store.tables(since=NOW + 1)  # cmpl-1 and only its feedback
    assert since_comp["id"].to_pylist() == ["cmpl-1"]
    assert since_fb["completion_id"].to_pylist() == ["cmpl-1", "cmpl-1"]


def test_feedback_is_idempotent(store: FeedbackStore) -> None:
    store.record_completion(record(1))
    first = FeedbackEvent("cmpl-1", 1, "edited", text="kept", created=NOW)
    again = FeedbackEvent("cmpl-1", 1, "edited", text="a later edit", created=NOW + 1)
    assert [store.record_feedback(ev) for ev in (first, again, first)] == [True, False, False]
    assert store.record_feedback(FeedbackEvent("cmpl-1", 1, "shown")) is True  # another event: new
    assert store.record_feedback(FeedbackEvent("cmpl-1", 0, "edited")) is True  # another choice: new
    fb = store.tables()[1]
    assert sorted(zip(fb["choice"].to_pylist(), fb["event"].to_pylist(), strict=True)) == [
        (0, "edited"), (1, "edited"), (1, "shown")]
    assert fb.filter(pc.equal(fb["choice"], 1))["text"].to_pylist() == ["kept", None]  # the first one stays
    with pytest.raises(ValueError, match="id: completion 'cmpl-1' is already recorded"):
        store.record_completion(record(1))


BAD_EVENTS = [
    (FeedbackEvent("cmpl-1", 0, "liked"), "event", "'liked' is not one of shown, accepted, rejected, edited"),
    (FeedbackEvent("cmpl-1", -1, "shown"), "choice", "integer >= 0, got -1"),
    (FeedbackEvent("cmpl-1", 2, "shown"), "choice", "has 2 choice\\(s\\), so 0 <= choice < 2; got 2"),
    (FeedbackEvent("cmpl-1", True, "shown"), "choice", "got True"),
    (FeedbackEvent("cmpl-1", "0", "shown"), "choice", "got '0'"),
    (FeedbackEvent("cmpl-1", 0, "accepted", text="x"), "text", "only an 'edited' event carries text"),
    (FeedbackEvent("cmpl-1", 0, "edited", text=5), "text", "text is a string, got int"),
    (FeedbackEvent("cmpl-1", 0, "shown", user=7), "user", "a user id is a string, got int"),
    (FeedbackEvent("cmpl-1", 0, "shown", created=math.nan), "created", "unix seconds, got nan"),
    (FeedbackEvent("", 0, "shown"), "completion_id", "non-empty string"),
]


def test_bad_feedback_names_the_field(store: FeedbackStore) -> None:
    store.record_completion(record(1, n_choices=2))
    for ev, field, message in BAD_EVENTS:
        with pytest.raises(BadFeedback, match=f"^{field}: .*{message}") as caught:
            store.record_feedback(ev)
        assert caught.value.field == field
    with pytest.raises(UnknownCompletion, match="completion_id: no completion 'cmpl-nope'"):
        store.record_feedback(FeedbackEvent("cmpl-nope", 0, "shown"))
    assert store.tables()[1].num_rows == 0  # nothing of the rejected events was stored


@pytest.mark.parametrize(("change", "field"), [
    ({"n_choices": 0, "finish_reasons": ()}, "n_choices"), ({"finish_reasons": ("stop",)}, "finish_reasons"),
    ({"finish_reasons": ("stop", "a,b")}, "finish_reasons"), ({"texts": ("one",)}, "texts"),
    ({"assignment": "random"}, "assignment"), ({"prompt_tokens": -1}, "prompt_tokens"), ({"id": ""}, "id"),
])
def test_completion_record_checks_name_the_field(change: dict, field: str) -> None:
    fields = {**record(1).__dict__, **change}
    with pytest.raises(ValueError, match=f"^{field}: "):
        CompletionRecord(**fields)


def _salt(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == "salt")).scalar_one()
    finally:
        engine.dispose()


def test_users_are_stored_salted_and_hashed(db_url: str, tmp_path: Path) -> None:
    with FeedbackStore(db_url) as one:
        one.record_completion(record(1, user=RAW_USER))
        one.record_feedback(FeedbackEvent("cmpl-1", 0, "accepted", user=RAW_USER))
        first = one.tables()
    with FeedbackStore(db_url) as two:  # a second replica (or a restart) hashes the same way
        two.record_completion(record(2, user=RAW_USER))
        two.record_feedback(FeedbackEvent("cmpl-2", 0, "accepted", user="bob"))
        comp, fb = two.tables()
        bob = two.user_hash("bob")
    salt = _salt(db_url)
    expected = hashlib.sha256(f"{salt}:{RAW_USER}".encode()).hexdigest()
    assert len(salt) == 32 and comp["user_hash"].to_pylist() == [expected, expected]
    assert fb["user_hash"].to_pylist() == [expected, bob] and bob != expected
    assert first[1]["user_hash"].to_pylist() == [expected]
    assert RAW_USER not in str(comp.to_pylist()) + str(fb.to_pylist())
    with FeedbackStore(default_url(tmp_path / "elsewhere")) as other:  # another database: another salt
        assert other.user_hash(RAW_USER) != expected
    if db_url.startswith("sqlite"):  # the raw id is nowhere in the database's files (WAL included)
        files = [p for p in Path(db_url.removeprefix("sqlite:///")).parent.iterdir() if p.is_file()]
        assert files and all(RAW_USER.encode() not in p.read_bytes() for p in files)
        assert any(expected.encode() in p.read_bytes() for p in files)


def test_newer_schema_is_refused(db_url: str) -> None:
    FeedbackStore(db_url).close()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(FeedbackStore.SCHEMA_VERSION + 1)))
    engine.dispose()
    with pytest.raises(SchemaError, match=f"schema version {FeedbackStore.SCHEMA_VERSION + 1}, newer than this code's "
                                          f"{FeedbackStore.SCHEMA_VERSION}: upgrade llmfoundry_lite"):
        FeedbackStore(db_url)


def test_retention_purges_old_completions_and_their_feedback(db_url: str) -> None:
    with pytest.raises(ValueError, match="retention_days: must be > 0"):
        FeedbackStore(db_url, retention_days=0)
    day = 86_400.0
    with FeedbackStore(db_url, retention_days=7) as s:
        s.PAGE_ROWS = 2  # several purge transactions
        for i in range(5):
            s.record_completion(record(f"old{i}", created=NOW - 10 * day))
            for event in ("shown", "accepted"):
                s.record_feedback(FeedbackEvent(f"cmpl-old{i}", 0, event, created=NOW - 9 * day))
        s.record_completion(record("new", created=NOW - 6 * day))
        s.record_feedback(FeedbackEvent("cmpl-new", 1, "rejected", created=NOW - 6 * day))
        assert s.purge(now=NOW) == 5 + 10
        comp, fb = s.tables()
        assert comp["id"].to_pylist() == ["cmpl-new"] and fb["completion_id"].to_pylist() == ["cmpl-new"]
        assert s.purge(now=NOW) == 0
        with pytest.raises(UnknownCompletion, match="cmpl-old0"):
            s.record_feedback(FeedbackEvent("cmpl-old0", 0, "rejected"))
    with FeedbackStore(db_url) as keep_all:
        assert keep_all.purge(now=NOW + 1000 * day) == 0 and keep_all.tables()[0].num_rows == 1


def test_purge_racing_feedback_is_an_unknown_completion(pg_url: str) -> None:
    """PostgreSQL (read committed): a purge on another replica removes the completion between the store's
    lookup and its insert; the foreign key refuses the insert, and the caller gets UnknownCompletion."""
    other = create_engine(pg_url)
    with FeedbackStore(pg_url) as s:
        s.record_completion(record(1))

        def purge_first(conn, cursor, statement: str, *args) -> None:
            if statement.startswith("INSERT INTO feedback"):
                with other.begin() as purge:
                    purge.execute(delete(completions).where(completions.c.id == "cmpl-1"))

        event.listen(s._engine, "before_cursor_execute", purge_first)
        with pytest.raises(UnknownCompletion, match="cmpl-1") as caught:
            s.record_feedback(FeedbackEvent("cmpl-1", 0, "shown"))
        assert isinstance(caught.value.__cause__, IntegrityError)
        assert s.tables()[1].num_rows == 0
    other.dispose()


def test_other_dialects_insert_through_a_savepoint(store: FeedbackStore) -> None:
    """The path for databases without INSERT ... ON CONFLICT (a savepoint), forced here on SQLite and
    PostgreSQL: a duplicate is False, a missing completion still raises."""
    store._dialect = "other"
    store.record_completion(record(1))
    ev = FeedbackEvent("cmpl-1", 0, "accepted")
    assert [store.record_feedback(ev), store.record_feedback(ev)] == [True, False]
    with pytest.raises(ValueError, match="already recorded"):
        store.record_completion(record(1))
    with pytest.raises(IntegrityError):  # the foreign key, not a duplicate: not swallowed
        with store._transaction(write=True) as conn:
            store._insert_new(conn, feedback, {"completion_id": "cmpl-x", "choice": 0, "event": "shown",
                                               "created": NOW})
    assert store.tables()[1].num_rows == 1


def test_export_writes_the_interface_columns(db_url: str, tmp_path: Path) -> None:
    with FeedbackStore(db_url) as s:
        s.PAGE_ROWS = 3  # the export pages through 7 completions and 11 events
        for i in range(7):
            s.record_completion(record(i, texts=i % 2 == 0, created=NOW + i))
        events = [FeedbackEvent(f"cmpl-{i}", c, "shown") for i in range(4) for c in range(2)]
        events += [FeedbackEvent("cmpl-0", 0, "accepted"), FeedbackEvent("cmpl-1", 1, "edited", text="kept"),
                   FeedbackEvent("cmpl-2", 1, "rejected")]
        assert all(s.record_feedback(ev) for ev in events)
        counts = s.export(tmp_path / "out")
        comp, fb = s.tables()
    assert counts == {"completions": 7, "feedback": 11}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["completions.parquet", "feedback.parquet"]
    comp_file, fb_file = pq.read_table(tmp_path / "out/completions.parquet"), pq.read_table(tmp_path / "out/feedback.parquet")
    assert comp_file.schema.remove_metadata() == COMPLETIONS_ARROW and fb_file.schema.remove_metadata() == FEEDBACK_ARROW
    assert comp_file.schema.field("texts").type == pa.list_(pa.string())
    assert comp_file.schema.field("n_choices").type == pa.int32() and fb_file.schema.field("choice").type == pa.int32()
    assert comp_file.equals(comp) and fb_file.equals(fb)
    assert comp_file["id"].to_pylist() == [f"cmpl-{i}" for i in range(7)]
    assert comp_file["texts"].to_pylist()[:2] == [["    return a + b  # 0", "    return a + b  # 1"], None]
    assert [(r["completion_id"], r["choice"], r["event"], r["text"]) for r in fb_file.to_pylist()[-3:]] == [
        ("cmpl-0", 0, "accepted", None), ("cmpl-1", 1, "edited", "kept"), ("cmpl-2", 1, "rejected", None)]


def _run_threads(target, n: int) -> None:
    """``target(0) .. target(n - 1)`` on n threads at once; the first exception is raised here."""
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(target, range(n)))


def test_concurrent_writers_lose_nothing(store: FeedbackStore) -> None:
    """8 threads x 200 events; threads 2g and 2g+1 send group g's 200 events (in opposite orders)."""
    for i in range(100):
        store.record_completion(record(i, n_choices=2))
    groups = [[FeedbackEvent(f"cmpl-{i}", c, e, text="kept" if e == "edited" else None)
               for i in range(25 * g, 25 * g + 25) for c in range(2) for e in ("shown", "accepted", "rejected", "edited")]
              for g in range(4)]
    new = [[] for _ in range(8)]

    def write(t: int) -> None:
        events = groups[t // 2] if t % 2 == 0 else groups[t // 2][::-1]
        new[t] = [(ev.completion_id, ev.choice, ev.event) for ev in events if store.record_feedback(ev)]

    _run_threads(write, 8)
    won = [key for keys in new for key in keys]
    assert len(won) == 800 and len(set(won)) == 800  # each triple was new for exactly one thread
    fb = store.tables()[1]
    stored = set(zip(fb["completion_id"].to_pylist(), fb["choice"].to_pylist(), fb["event"].to_pylist(), strict=True))
    assert fb.num_rows == 800 and stored == set(won)


def test_replicas_start_at_once_and_share_one_database(db_url: str) -> None:
    barrier, replicas = threading.Barrier(4), [None] * 4

    def start(t: int) -> None:
        barrier.wait()  # all four create the schema and the salt at the same moment
        replicas[t] = FeedbackStore(db_url)

    _run_threads(start, 4)
    a, b = replicas[0], replicas[1]
    assert len({r.user_hash("u1") for r in replicas}) == 1
    for r in replicas[2:]:
        r.close()
    for i in range(100):
        a.record_completion(record(f"a{i}", user="u1"))
        b.record_completion(record(f"b{i}", user="u1"))
    ids = [f"cmpl-{p}{i}" for p in "ab" for i in range(100)]
    new = [0, 0]

    def write(t: int) -> None:  # each replica sends every event once: 400 new, 400 duplicates
        replica = (a, b)[t]
        new[t] = sum(replica.record_feedback(FeedbackEvent(cid, 0, e, user="u1")) for cid in ids[::1 - 2 * t]
                     for e in ("shown", "accepted"))

    _run_threads(write, 2)
    comp, fb = a.tables()
    assert sum(new) == 400 and fb.num_rows == 400 and comp.num_rows == 200
    assert set(comp["user_hash"].to_pylist()) == set(fb["user_hash"].to_pylist()) == {b.user_hash("u1")}
    a.close()
    b.close()


CHILD = r"""
import sys, threading
from llmfoundry_lite.serve.feedback_store import CompletionRecord, FeedbackEvent, FeedbackStore
store, lock = FeedbackStore(sys.argv[1]), threading.Lock()
def work(t):
    for i in range(1_000_000):
        cid = f"cmpl-{t}-{i}"
        store.record_completion(CompletionRecord(id=cid, created=float(i), model="m", assignment="default",
            user=f"user-{i % 7}", language="python", n_choices=1, prompt_tokens=5, suffix_tokens=0,
            completion_tokens=9, latency_ms=1.0, ttft_ms=0.5, finish_reasons=("stop",)))
        store.record_feedback(FeedbackEvent(cid, 0, "accepted", user=f"user-{i % 7}"))
        with lock:  # acknowledged: both calls returned
            print(cid, flush=True)
for t in range(4):
    threading.Thread(target=work, args=(t,)).start()
"""


def test_sigkill_keeps_every_acknowledged_record(db_url: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, db_url], stdout=subprocess.PIPE, text=True)
    acked = []
    for line in child.stdout:
        acked.append(line)
        if len(acked) == 300:
            os.kill(child.pid, signal.SIGKILL)  # mid-load: its four threads are inside store calls
            break
    acked += child.stdout.read().splitlines(keepends=True)  # lines it printed before it died
    assert child.wait() == -signal.SIGKILL
    acked_ids = {line.strip() for line in acked if line.endswith("\n")}  # a torn last line was not acknowledged
    with FeedbackStore(db_url) as s:
        comp, fb = s.tables()
    assert len(acked_ids) >= 300
    assert acked_ids <= set(comp["id"].to_pylist())
    assert acked_ids <= set(fb.filter(pc.equal(fb["event"], "accepted"))["completion_id"].to_pylist())


def test_export_command(tmp_path: Path) -> None:
    url = default_url(tmp_path / "db")
    with FeedbackStore(url) as s:
        for i in range(3):
            s.record_completion(record(i))
        s.record_feedback(FeedbackEvent("cmpl-2", 1, "accepted"))
    script = [sys.executable, str(REPO / "scripts/feedback_export.py")]
    done = subprocess.run([*script, "--db", url, "--output", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"completions: 3 rows -> {tmp_path / 'out/completions.parquet'}",
                                        f"feedback: 1 rows -> {tmp_path / 'out/feedback.parquet'}"]
    assert pq.read_table(tmp_path / "out/completions.parquet")["id"].to_pylist() == ["cmpl-0", "cmpl-1", "cmpl-2"]
    assert pq.read_table(tmp_path / "out/feedback.parquet").to_pylist()[0]["completion_id"] == "cmpl-2"
    missing = subprocess.run([*script, "--db", default_url(tmp_path / "nowhere"), "--output", str(tmp_path / "o2")],
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert missing.returncode == 2 and missing.stderr.strip().endswith(f"(--db {default_url(tmp_path / 'nowhere')})")
    assert "no feedback database at" in missing.stderr and not (tmp_path / "nowhere").exists()
