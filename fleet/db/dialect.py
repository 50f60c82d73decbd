"""Everything that differs between SQLite and PostgreSQL lives here.

- engine setup: SQLite gets WAL, a busy timeout and explicit BEGIN / BEGIN IMMEDIATE; PostgreSQL gets psycopg 3.
- the claim: PostgreSQL locks the row it hands out with FOR UPDATE SKIP LOCKED so concurrent claimers never wait on
  each other; SQLite serialises writers with BEGIN IMMEDIATE, so a plain SELECT inside that transaction is safe.
- timestamps: SQLite has no time zones, so datetimes are stored as naive UTC and come back aware.
- single statements: on PostgreSQL they run on a second pool whose connections stay in autocommit (one round trip
  instead of BEGIN, statement, COMMIT, and no per-checkout isolation switching); SQLite still wraps writes in
  BEGIN IMMEDIATE, which costs nothing on the wire.
- hot single statements (fleet.db.direct) run on DBAPI connections in autocommit: on SQLite one per thread,
  on PostgreSQL from the single-statement pool.
- wake-ups: every process wakes its own long-polling dequeues in memory; PostgreSQL also announces ready jobs
  with NOTIFY so the other server processes on the database wake theirs.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Select, TextClause, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

# Execution option that turns a SQLite transaction into BEGIN IMMEDIATE (takes the write lock up front, so
# read-then-write sequences cannot deadlock into SQLITE_BUSY half-way).
WRITE_OPTION = "fleet_write"
SQLITE_BUSY_TIMEOUT_SECONDS = 30


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DatabaseURLError(ValueError):
    pass


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise DatabaseURLError(
            "cannot be parsed; use sqlite:///./fleet.db or postgresql+psycopg://user:pass@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise DatabaseURLError(f"driver {parsed.drivername!r} is not supported; use postgresql+psycopg://")
        # UTF-8 whatever the database's encoding: on a SQL_ASCII one (initdb without a locale, as in a bare
        # container) psycopg would return bytes for text and the first query would fail. The URL carries it, so
        # the single-statement pool and the LISTEN connection (both made from engine.url) get it too.
        if "client_encoding" not in parsed.query:
            parsed = parsed.update_query_dict({"client_encoding": "utf8"})
        return create_engine(parsed, pool_size=5, max_overflow=15, pool_pre_ping=True)
    raise DatabaseURLError(f"unsupported database {backend!r}; use sqlite:/// or postgresql+psycopg://")


def _sqlite_engine(url: str, **pool: Any) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        **(pool or {"pool_size": 20, "max_overflow": 20}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see the "begin" hook).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


# Any fixed 64-bit number; it only has to be the same in every server process of one database.
MULTI_ROW_LOCK_KEY = 0x666C656574  # "fleet"


def serialize_multi_row_writes(conn: Connection) -> None:
    """Let one multi-row final-state transaction (resetter, retention) run at a time, across server processes.

    Each such transaction locks several finished_counts rows (migration 0003's triggers), in the order it meets
    the jobs; two of them side by side can take the same rows in opposite orders and deadlock on PostgreSQL
    (tests/fleet/test_maintenance_concurrency.py). Single-job statements lock one counter row as their last act
    and wait for nothing after it, so they need no such lock. The advisory lock ends with the transaction.
    SQLite needs nothing: its write transactions are serial already (BEGIN IMMEDIATE).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MULTI_ROW_LOCK_KEY})


def lock_for_claim(stmt: Select[Any], engine: Engine) -> Select[Any]:
    """Make a candidate-selection query safe for concurrent claimers on this dialect."""
    if engine.dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


def single_statement_engines(engine: Engine, threads: int) -> tuple[Engine, Engine]:
    """Engines for one-statement reads and writes, which need no explicit transaction to be atomic.

    `threads` is how many store threads run them at once: the PostgreSQL pool keeps that many sessions open,
    so a busy server never opens and closes backends call by call (the few overflow sessions serve callers
    outside the store threads).
    """
    if engine.dialect.name == "postgresql":
        # LIFO here and in the loop's pool: a call takes the connection returned last, whose backend has just run
        # and is still warm, instead of the one idle longest (a job's pickup is a submission's insert and then
        # the woken dequeue's claim: 2.85-2.91 -> 2.44-2.48 ms p50 with 1,000 parked executors, README "Figures").
        # Connections that never leave autocommit, so nothing is reset when they go back to the pool. No pre-ping
        # either (a round trip per checkout, a third of a protocol call's cost): after a database restart the
        # first call on a dead connection fails (a 5xx, which executors retry) and SQLAlchemy replaces the pool.
        autocommit = create_engine(
            engine.url,
            pool_size=threads,
            max_overflow=4,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,
            pool_use_lifo=True,
        )
        return autocommit, autocommit
    return engine, engine.execution_options(**{WRITE_OPTION: True})


def direct_engine(engine: Engine, single_statements: Engine) -> tuple[Engine, bool]:
    """The engine fleet.db.direct runs on, and whether each thread keeps its own connection of it.

    SQLite: an engine without a pool whose connect hook leaves connections in autocommit (isolation_level
    None); each thread keeps one. PostgreSQL: the single-statement pool, whose connections never leave
    autocommit; a statement checks one out and returns it, so no session is opened beyond that pool."""
    if is_sqlite(engine):
        return _sqlite_engine(engine.url.render_as_string(hide_password=False), poolclass=NullPool), True
    return single_statements, False


# Connections of the event loop's single-statement pool (fleet/db/on_loop.py), as many as the store threads: each
# hot statement holds one for a round trip. No overflow: past these, a call waits on the loop for one, since
# overflow connections are opened and closed call by call (a backend each) when demand stays above the pool.
LOOP_POOL_SIZE = 16


def loop_engine_factory(single_statements: Engine) -> Callable[[], Engine] | None:
    """Makes the engine fleet.db.direct runs on inside store calls on an event loop (fleet/db/on_loop.py):
    PostgreSQL's single-statement connections again, through the async psycopg driver (an asyncio connection
    belongs to one loop, so one engine per loop). None on SQLite, whose store calls run inline."""
    if is_sqlite(single_statements):
        return None
    url = single_statements.url.set(drivername="postgresql+psycopg_async")

    def make() -> Engine:
        from sqlalchemy.ext.asyncio import create_async_engine  # only servers on PostgreSQL load asyncio's parts

        return create_async_engine(
            url,
            pool_size=LOOP_POOL_SIZE,
            max_overflow=0,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,
            pool_use_lifo=True,
        ).sync_engine

    return make


# PostgreSQL channel on which jobs becoming ready are announced to every server process.
QUEUE_CHANNEL = "fleet_queue_ready"
# Where announcements wait on a connection until its transaction commits (see Database.write).
READY_KEY = "fleet_ready"


@dataclass(frozen=True)
class ReadyAnnouncement:
    """`count` jobs of `queue` are ready (at `at`, for retry delays; None: now), announced by process `origin`."""

    queue: str
    count: int
    at: datetime | None
    origin: str


_origin: tuple[int, str] | None = None


def process_origin() -> str:
    """This server process's name in announcements (per pid: a forked worker gets its own)."""
    global _origin
    if _origin is None or _origin[0] != os.getpid():
        _origin = (os.getpid(), f"{os.getpid()}-{secrets.token_hex(4)}")
    return _origin[1]


def announce_ready(conn: Any, queues: Iterable[str], at: datetime | None = None) -> None:
    """Announce one ready job per entry of `queues` (a queue named twice: two jobs), once the transaction commits.

    This process's waiters are woken in memory after the commit (Database.write runs its ready_listeners);
    on PostgreSQL a NOTIFY also reaches the other server processes on the database, which is delivered at
    commit too. SQLite has a single server process.
    """
    notes = ready_announcements(queues, at)
    if not notes:
        return
    conn.info.setdefault(READY_KEY, []).extend(notes)
    for note in notes:
        notify = notify_statement(conn.dialect, note)
        if notify is not None:
            conn.execute(*notify)


def ready_announcements(queues: Iterable[str], at: datetime | None = None) -> list[ReadyAnnouncement]:
    """One announcement per queue, counting the jobs named for it (see announce_ready)."""
    counts = Counter(queues)
    origin = process_origin()
    return [ReadyAnnouncement(queue, counts[queue], at, origin) for queue in sorted(counts)]


_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def notify_statement(dialect: Dialect, note: ReadyAnnouncement) -> tuple[TextClause, dict[str, str]] | None:
    """The statement that tells the other server processes of an announcement; None on SQLite (one process)."""
    if dialect.name != "postgresql":
        return None
    return _NOTIFY, {"channel": QUEUE_CHANNEL, "payload": _payload(note)}


def _payload(note: ReadyAnnouncement) -> str:
    at = f"{note.at.timestamp():.6f}" if note.at is not None else "-"
    # Unique per announcement: PostgreSQL folds identical payloads sent in one transaction into one.
    return f"{note.queue} {note.count} {at} {note.origin}"


def parse_ready_payload(payload: str) -> ReadyAnnouncement | None:
    """A NOTIFY payload as an announcement; None for this process's own (its waiters were woken in memory)."""
    parts = payload.split(" ")
    if len(parts) != 4:
        return ReadyAnnouncement(payload, 1, None, "")  # a bare queue name, as older servers send
    queue, count, at, origin = parts
    if origin == process_origin():
        return None
    when = datetime.fromtimestamp(float(at), UTC) if at != "-" else None
    return ReadyAnnouncement(queue, max(int(count), 1), when, origin)


def listen_dsn(engine: Engine) -> str | None:
    """A libpq connection string for a LISTEN connection; None where there is nothing to listen to (SQLite)."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_sqlite_url(url: str) -> bool:
    try:
        return make_url(url).get_backend_name() == "sqlite"
    except Exception:  # unparsable: make_engine reports it with a proper message
        return False


def aggregate_datetime(value: datetime | str | None) -> datetime | None:
    """MIN()/MAX() over a datetime column skips the column type on SQLite and returns naive or text values."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def upsert(conn: Any, table: Any, values: dict[str, Any], key: str, update: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, which both dialects support with their own insert()."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_stmt = pg_insert(table).values(**values)
        conn.execute(pg_stmt.on_conflict_do_update(index_elements=[key], set_=update))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite_stmt = sqlite_insert(table).values(**values)
        conn.execute(lite_stmt.on_conflict_do_update(index_elements=[key], set_=update))


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find; show nothing of it
        return "<unparsable URL>"


def runs_inline(engine: Engine) -> bool:
    """Whether the HTTP layer may call the store on the event loop instead of a worker thread.

    SQLite statements are local and take well under a millisecond, while a hop to a worker thread costs about
    as much again; the process-wide writer lock keeps waits short. PostgreSQL calls cross the network: they
    await the async driver on the loop where they can, else go to a worker thread (fleet/db/on_loop.py).
    """
    return is_sqlite(engine)
