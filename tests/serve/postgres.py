"""A real PostgreSQL server for the tests, from Debian's ``postgresql`` package (``make system-deps``).

``with postgres_server() as pg:`` runs ``initdb`` into a fresh temporary directory, starts the server on
a free 127.0.0.1 port (its unix socket in the same directory, so no system path is touched), creates the
database ``test`` (``pg.url``) and stops the server with ``pg_ctl stop -m immediate`` at the end.
``pg.create_database(name)`` gives a test its own database on the same server.

PostgreSQL refuses to run as root, and CI runs as root: there the binaries run as the package's
``postgres`` system user (``runuser``), which owns the temporary directory. Missing binaries fail the
test naming the fix; they are not a reason to skip, since the store's PostgreSQL path is what several
server replicas use.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
"""The database superuser initdb creates, and (as root) the system user the server runs as."""


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's ``bin`` directory; fails the test when there is none."""
    versions = [d for d in PG_ROOT.glob("*/bin") if (d / "initdb").exists() and (d / "pg_ctl").exists()]
    if not versions:
        pytest.fail(f"PostgreSQL is not installed (no initdb/pg_ctl under {PG_ROOT}/*/bin): run `make system-deps` "
                    "(it installs Debian's postgresql package)", pytrace=False)
    return max(versions, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    """``cmd`` as the ``postgres`` system user when we are root (PostgreSQL refuses root), else as is."""
    return ["runuser", "-u", SUPERUSER, "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], cwd: Path, what: str, log: Path | None = None) -> None:
    # cwd: the temp dir, which the postgres user can enter (it may not be able to enter ours)
    done = subprocess.run(_as_server_user(cmd), cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LC_ALL": "C.UTF-8"})
    if done.returncode != 0:
        log_tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout}{done.stderr}\n{log_tail}")


@dataclass(frozen=True)
class PostgresServer:
    """A running server; ``url`` is the SQLAlchemy URL of its ``test`` database."""

    root: Path
    port: int
    host: str = "127.0.0.1"

    def url_of(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_of("test")

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL."""
        with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_of(name)


def _start(bindir: Path, root: Path, data: Path, log: Path) -> int:
    """Start the server on a free port (a few tries: another process may take the port first); return it."""
    for attempt in range(3):
        port = _free_port()
        # fsync=off: the tests kill clients, never this server, so its own durability across a power cut is
        # not what they measure; without it each CREATE DATABASE and commit waits for the disk
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
        try:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"],
                 root, "pg_ctl start", log)
            return port
        except RuntimeError:
            if attempt == 2 or "could not bind" not in (log.read_text() if log.exists() else ""):
                raise
    raise AssertionError("unreachable: the loop returns or raises")


def _stop(bindir: Path, root: Path, data: Path) -> None:
    """``pg_ctl stop -m immediate``; if that fails, SIGKILL the postmaster named in its pid file."""
    try:
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], root, "pg_ctl stop")
    except (RuntimeError, subprocess.TimeoutExpired):
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            time.sleep(0.5)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server for the duration of the block (see the module docstring)."""
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="llmfl-postgres-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SUPERUSER)
        os.chown(root, user.pw_uid, user.pw_gid)
    data, log = root / "data", root / "server.log"
    started = False
    try:
        # trust: the server listens on loopback and a socket in a private directory, for this test run only
        _run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
              "--no-sync", "--no-instructions"], root, "initdb")
        port = _start(bindir, root, data, log)
        started = True
        server = PostgresServer(root=root, port=port)
        server.create_database("test")
        yield server
    finally:
        if started:
            _stop(bindir, root, data)
        shutil.rmtree(root)
