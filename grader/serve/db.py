"""One database, two engines: SQLite (embedded, the default) and PostgreSQL, same SQL.

The server's code writes its queries once, with ``?`` placeholders, and this module runs them
on either engine: it turns the placeholders into psycopg's, swaps the few words of the schema
the two spell differently (an auto-numbered key, bytes) and gives every row as a dict. Each
thread has its own connection; ``tx`` is one transaction, taken for writing at once on SQLite
(``BEGIN IMMEDIATE``), so that two writers queue instead of failing half-way.

Durability: SQLite runs in WAL mode with ``synchronous=FULL``, so a committed upload survives
a ``kill -9`` and a power cut; PostgreSQL commits as it is configured (fsync on by default).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.core.errors import GraderError

SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, data {bytes} NOT NULL);
CREATE TABLE IF NOT EXISTS students (
    id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', email TEXT NOT NULL DEFAULT '',
    section TEXT NOT NULL DEFAULT '', sis_id TEXT NOT NULL DEFAULT '',
    login TEXT NOT NULL DEFAULT '', canvas_id TEXT NOT NULL DEFAULT '',
    moodle_id TEXT NOT NULL DEFAULT '', token_digest TEXT UNIQUE,
    token_generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS instructors (
    name TEXT PRIMARY KEY, password TEXT NOT NULL DEFAULT '', created DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS signin_links (
    digest TEXT PRIMARY KEY, instructor TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY, role TEXT NOT NULL, who TEXT NOT NULL, csrf TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, seen DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (name TEXT PRIMARY KEY, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS extensions (
    assignment TEXT NOT NULL, student TEXT NOT NULL, deadline TEXT NOT NULL,
    PRIMARY KEY (assignment, student));
CREATE TABLE IF NOT EXISTS submitted_times (
    assignment TEXT NOT NULL, student TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (assignment, student));
CREATE TABLE IF NOT EXISTS adjustments (
    id {serial}, assignment TEXT NOT NULL, student TEXT NOT NULL, test TEXT,
    points DOUBLE PRECISION NOT NULL, comment TEXT NOT NULL, author TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS submissions (
    id {serial}, public_id TEXT NOT NULL UNIQUE, student TEXT NOT NULL,
    assignment TEXT NOT NULL, sha256 TEXT NOT NULL REFERENCES blobs (sha256),
    filename TEXT NOT NULL, received DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', worker TEXT, lease DOUBLE PRECISION,
    tries INTEGER NOT NULL DEFAULT 0, started DOUBLE PRECISION, finished DOUBLE PRECISION,
    failure TEXT);
CREATE INDEX IF NOT EXISTS submissions_state ON submissions (state, id);
CREATE INDEX IF NOT EXISTS submissions_student ON submissions (student, assignment, id);
CREATE TABLE IF NOT EXISTS results (
    submission INTEGER PRIMARY KEY REFERENCES submissions (id), body TEXT NOT NULL,
    score DOUBLE PRECISION, max_score DOUBLE PRECISION, graded DOUBLE PRECISION NOT NULL,
    worker TEXT);
CREATE TABLE IF NOT EXISTS audit (
    id {serial}, at DOUBLE PRECISION NOT NULL, author TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL);
"""
DIALECT_WORDS = {
    "sqlite": {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "bytes": "BLOB"},
    "postgres": {"serial": "BIGSERIAL PRIMARY KEY", "bytes": "BYTEA"},
}
SCHEMA_LOCK = 0x67726164  # PostgreSQL advisory lock: two servers starting at once


@dataclass(frozen=True)
class Location:
    """Where the database is: ``sqlite`` with a file, or ``postgres`` with a conninfo URL."""

    dialect: str
    target: str

    @classmethod
    def parse(cls, text: str) -> Location:
        """``postgresql://…`` (or ``postgres://``), ``sqlite:///relative`` or
        ``sqlite:////absolute`` (as SQLAlchemy writes them), or a plain path."""
        if text.startswith(("postgresql://", "postgres://")):
            return cls("postgres", text)
        if text.startswith("sqlite:///"):
            return cls("sqlite", text[len("sqlite:///"):])
        if "://" in text:
            raise GraderError(f"--database: not a SQLite path nor a postgresql:// URL: "
                              f"{text.split('://')[0]}://…")
        return cls("sqlite", text)

    def shown(self) -> str:
        """For messages: a URL's password never printed."""
        if self.dialect == "postgres" and "@" in self.target:
            scheme, rest = self.target.split("://", 1)
            return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
        return self.target


class Database:
    """Connections per thread to one database, with the schema made on first use."""

    def __init__(self, location: Location | str):
        self.location = (Location.parse(location) if isinstance(location, str)
                         else location)
        self.dialect = self.location.dialect
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        if self.dialect == "sqlite":
            Path(self.location.target).parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()

    # -- connections --
    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            connection = sqlite3.connect(self.location.target, timeout=60,
                                         isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            return connection
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError:
            raise GraderError("a postgresql:// database needs psycopg: pip install "
                              "'backprop-grader[postgres]'") from None
        try:
            return psycopg.connect(self.location.target, autocommit=True, row_factory=dict_row)
        except psycopg.OperationalError as exc:
            raise GraderError(f"cannot reach the database {self.location.shown()}: "
                              f"{str(exc).strip().splitlines()[0]}") from None

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                with contextlib.suppress(Exception):
                    connection.close()
            self._all.clear()
        self._local = threading.local()

    # -- queries --
    @contextlib.contextmanager
    def tx(self) -> Iterator[Transaction]:
        """One transaction, committed at the end of the block, rolled back on an exception."""
        connection = self._connection()
        if self.dialect == "sqlite":
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self, connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        else:
            with connection.transaction():
                yield Transaction(self, connection)

    def all(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of one read, outside any transaction."""
        return _rows(self._connection().execute(self.sql(sql), params))

    def one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        rows = self.all(sql, *params)
        return rows[0] if rows else None

    def sql(self, text: str) -> str:
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    def _create_schema(self) -> None:
        statements = [s.strip() for s in SCHEMA.format(**DIALECT_WORDS[self.dialect]).split(";")]
        with self.tx() as tx:
            if self.dialect == "postgres":
                tx.run("SELECT pg_advisory_xact_lock(?)", SCHEMA_LOCK)
            for statement in statements:
                if statement:
                    tx.run(statement)


@dataclass
class Transaction:
    database: Database
    connection: Any

    def run(self, sql: str, *params: Any) -> int:
        """Execute; the number of rows changed."""
        cursor = self.connection.execute(self.database.sql(sql), params)
        changed: int = cursor.rowcount
        return changed

    def all(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return _rows(self.connection.execute(self.database.sql(sql), params))

    def one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        rows = self.all(sql, *params)
        return rows[0] if rows else None

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cursor = self.connection.cursor()
            cursor.executemany(self.database.sql(sql), rows)


def _rows(cursor: Any) -> list[dict[str, Any]]:
    if cursor.description is None:
        return []
    return [dict(row) for row in cursor.fetchall()]
