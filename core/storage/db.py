"""Engines and transactions, with SQLite made safe.

SQLite: the driver's own transaction handling is switched off and every transaction
starts with ``BEGIN IMMEDIATE``, so a read-then-write holds the write lock from its first
read (by default the driver begins a transaction only at the first write, so a
read-then-write runs half outside it and concurrent updates are silently lost); WAL,
``busy_timeout``, ``foreign_keys=ON`` on every connection; one writer at a time per
process (a lock), because connections fighting for the file lock back off with sleeps
and wreck latency.

PostgreSQL: plain READ COMMITTED transactions; the case service guards the case row
with its version and serialises the journal chain per company by locking its head row.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

DEFAULT_URL = "sqlite:///var/kefu.db"

_BEFORE_COMMIT = "kefu.before_commit"
_AFTER_COMMIT = "kefu.after_commit"


def before_commit(conn: Connection, key: str, flush: Callable[[Connection], None]) -> bool:
    """Run ``flush(conn)`` once at the end of the write transaction ``conn``, just before
    it commits (not at all if it rolls back); registering the same ``key`` again is a
    no-op. Returns whether this call registered it.

    For work that is cheaper done once per transaction than once per change, such as
    writing each changed case's search document once, in id order.
    """
    pending = conn.info.setdefault(_BEFORE_COMMIT, {})
    if key in pending:
        return False
    pending[key] = flush
    return True


def after_commit(conn: Connection, done: Callable[[], None]) -> None:
    """Run ``done()`` once the write transaction ``conn`` has committed (never if it rolls
    back or its commit fails): for what a process may remember of a committed change only.
    An exception from ``done`` reaches the caller, after the commit."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(done)


class JsonText(str):
    """JSON already serialised: written to a JSON column as it is, not encoded again (the
    journal stores the very text its code covers)."""


#: JSON as UTF-8 text (not \u escapes), so a text search finds 张三 in case fields; one
#: encoder for every value (``json.dumps`` with an option builds a new one per call)
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _dumps(value: Any) -> str:
    if value.__class__ is JsonText:
        return str(value)
    return _ENCODER.encode(value)


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("KEFU_DATABASE_URL") or DEFAULT_URL


class Database:
    """One database (SQLite or PostgreSQL): its engine and its write and read transactions."""

    def __init__(self, url: str | None = None, *, echo: bool = False) -> None:
        self.url = database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True, "json_serializer": _dumps}
        if self.is_sqlite:
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
            # psycopg prepares a statement on the server after five runs, and PostgreSQL
            # may then keep one generic plan for it as long as the connection lives: a
            # plan made while a table was small (a sequential scan) stayed in use when it
            # held 20,000 cases — 131,580 scans reading 1.3 billion rows, 32 cases loaded
            # per second — until statistics changed. Planning each run with its values
            # costs microseconds and follows the table as it grows.
            kwargs["connect_args"] = {"options": "-c plan_cache_mode=force_custom_plan"}
        self.engine: Engine = create_engine(self.url, **kwargs)
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._writer: Connection | None = None  # SQLite: the write transactions' connection
        if self.is_sqlite:
            _make_sqlite_safe(self.engine)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction: commits on success, rolls back on any exception.

        Work registered with :func:`before_commit` runs last inside the transaction,
        work registered with :func:`after_commit` once it has committed.
        On SQLite, where one writer at a time holds the lock anyway, the transactions
        follow one another on one connection kept open for them (taking one from the pool
        and giving it back cost more than many a change of a case); after a failure the
        next transaction starts on a new one.
        """
        committed: list[Callable[[], None]] = []  # the after_commit work, once committed
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield from _flushing(conn, committed)
        else:
            with self._write_lock:
                kept = self._writer
                if kept is None or kept.closed or kept.invalidated:
                    kept = self._writer = self.engine.connect()
                conn = kept
                try:
                    with conn.begin():
                        yield from _flushing(conn, committed)
                except BaseException:
                    self._writer = None
                    conn.close()
                    raise
        for done in committed:
            done()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (no write lock on SQLite thanks to WAL)."""
        with self.engine.connect() as conn:
            conn.info["read_only"] = True
            try:
                yield conn
            finally:
                conn.rollback()
                conn.info.pop("read_only", None)

    def dispose(self) -> None:
        """Close every connection (the pooled ones and the SQLite writer's)."""
        if self._write_lock is not None:
            with self._write_lock:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
        self.engine.dispose()

    def optimize(self) -> None:
        """Refresh the planner's statistics (after start-up, bulk loads, and hourly).

        Without statistics SQLite may pick a poor index for a join and a query that should
        take milliseconds scans a company's whole history; ``analysis_limit`` bounds the
        work to a sample of each index, so this stays fast on millions of rows.
        PostgreSQL's autovacuum keeps statistics too; an explicit ``ANALYZE`` matters after
        a bulk load, before autovacuum notices.
        """
        with self.write() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("PRAGMA analysis_limit=1000")
                conn.exec_driver_sql("ANALYZE")
                conn.exec_driver_sql("PRAGMA optimize")
            else:
                conn.exec_driver_sql("ANALYZE")
        if self.is_sqlite:
            # and the write-ahead log copied back into the file: after a bulk load it
            # holds the whole load, which every read then looks up page by page
            raw: Any = self.engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
            # a SQLite connection reads the statistics when it opens (or runs ANALYZE
            # itself): the ones opened before would keep planning without them — at
            # 20,000 cases an inbox took 10 ms on those and 1 ms on new ones
            self.dispose()


def _flushing(conn: Connection, committed: list[Callable[[], None]]) -> Iterator[Connection]:
    """Hand out ``conn`` for a write transaction, then run its :func:`before_commit` work
    and hand its :func:`after_commit` work to ``committed``, for after the commit."""
    try:
        yield conn
        for flush in conn.info.pop(_BEFORE_COMMIT, {}).values():
            flush(conn)
        committed.extend(conn.info.pop(_AFTER_COMMIT, ()))
    finally:
        # a rolled-back transaction's, too: the connection's info outlives it (the pool)
        conn.info.pop(_BEFORE_COMMIT, None)
        conn.info.pop(_AFTER_COMMIT, None)


#: what every SQLite connection is set to when it opens (bench/actions_bench.py opens its
#: raw-SQL floor with the same)
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
    # NORMAL in WAL survived repeated kill -9 with nothing acknowledged lost (it is not
    # safe against power loss; FULL is)
    "PRAGMA synchronous=NORMAL",
    # The log is copied back into the file (a checkpoint: each page the log holds written
    # once, then the file synced) by the commit that takes it past this many pages; the
    # default is 1,000. A change of a case writes about 30 pages, so by default every
    # 33rd commit checkpointed. With a long history those pages are far apart in the file
    # (an old case's row, its timers, its index entries), so a checkpoint wrote more of
    # them: a commit took 273 µs on average with 1,000 cases stored and 355 µs with a
    # million. At 4,000 pages (a log of up to 16 MB) a page rewritten by many changes is
    # copied once per checkpoint instead of four times: 264 and 292 µs, and actions on
    # the million-case file ran at 92-94% of the rate of the small one instead of 84-88%.
    "PRAGMA wal_autocheckpoint=4000",
)


def _make_sqlite_safe(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # hand transaction control to SQLAlchemy's "begin" event below
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # on the driver's connection: SQLAlchemy's statement machinery around a fixed
        # BEGIN cost more than the BEGIN (every change of a case starts here)
        raw: Any = conn.connection.driver_connection
        raw.execute("BEGIN DEFERRED" if conn.info.get("read_only") else "BEGIN IMMEDIATE")
