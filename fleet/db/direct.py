"""Hot statements run on the DBAPI connection directly, below SQLAlchemy's Connection layer.

The executor protocol's claim, log entry and finish are each one statement, and around each SQLAlchemy's
execution context (events, compiled-cache lookup, parameter and result objects, BEGIN and COMMIT) cost three
times what the database did (docs/control-plane.md, "Performance notes"). Here such a statement is compiled once
per dialect, its parameters go through the same bind processors SQLAlchemy would apply, and it runs in
autocommit: a single statement is atomic on its own on both databases.

Statements are still written with SQLAlchemy Core, in the store module that owns them; this module only runs
them. DBAPI errors come out as SQLAlchemy's exception classes (so a database outage is still a 503), and a
connection the dialect sees as lost is dropped: the next call opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from fleet.db.on_loop import on_loop

# Called with each statement's SQL before it runs: statement counters in tests and benchmarks (the engines'
# before_cursor_execute events do not see these statements).
STATEMENT_LISTENERS: list[Callable[[str], None]] = []
MAX_COMPILED = 1024


_REQUIRED = object()  # a bind value the caller must give


@dataclass(frozen=True)
class _Slot:
    """One bind value of a compiled statement: the caller's value under `key` (through `process`), or else the
    statement's own, processed once at compile time; as SQLCompiler.construct_params and the bind processors
    would make it."""

    name: str  # in the SQL
    key: str  # in the caller's parameters
    process: Callable[[Any], Any] | None
    default: Any  # _REQUIRED, or the value written into the statement


@dataclass(frozen=True)
class _Compiled:
    sql: str
    slots: tuple[_Slot, ...]  # in the SQL's order for positional paramstyles (SQLite's qmark)
    positional: bool  # False for named paramstyles (psycopg's pyformat)
    results: tuple[Callable[[Any], Any] | None, ...]
    make_row: Callable[[Iterable[Any]], tuple[Any, ...]]  # a named tuple's: rows read like SQLAlchemy's Row


class DirectStatements:
    """Runs single statements for one engine, on connections in autocommit.

    per_thread: each calling thread keeps one connection of its own (SQLite: the engine has no pool, and its
    connect hook leaves connections in autocommit); otherwise each statement checks a connection out of the
    engine's pool and returns it (PostgreSQL: the store's single-statement pool, already in autocommit, so the
    protocol opens no sessions beyond it). on_lost: called when a connection is found lost (the database
    restarted): the store renews its pools, as SQLAlchemy does for its own. loop_engine: makes the engine of
    statements run inside store calls on an event loop (fleet/db/on_loop.py; PostgreSQL only).
    """

    def __init__(
        self,
        engine: Engine,
        per_thread: bool,
        on_lost: Callable[[], None],
        loop_engine: Callable[[], Engine] | None = None,
    ) -> None:
        self._engine = engine
        self._per_thread = per_thread
        self._on_lost = on_lost
        # Inside a store call on the event loop (fleet/db/on_loop.py) statements run on this engine's pool,
        # whose connections await the async driver; one engine per loop, since such connections belong to one.
        self._make_loop_engine = loop_engine
        self._loop_engine: tuple[asyncio.AbstractEventLoop, int, Engine] | None = None  # loop, generation
        # Bumped when a connection is found lost: every thread's connection of an older generation is renewed,
        # so one restart costs one failed call, not one per thread.
        self._generation = 0
        self._dialect = self._engine.dialect
        self._dbapi_error: type[Exception] = self._dialect.loaded_dbapi.Error
        self._compiled: dict[int, tuple[ClauseElement, _Compiled]] = {}
        self._local = threading.local()
        self._opened: list[Any] = []
        self._opened_lock = threading.Lock()

    def _compile(self, stmt: ClauseElement) -> _Compiled:
        hit = self._compiled.get(id(stmt))
        if hit is not None and hit[0] is stmt:
            return hit[1]
        compiled = cast(SQLCompiler, stmt.compile(dialect=self._dialect))
        columns = compiled._result_columns or ()  # the columns of RETURNING
        results = tuple(entry.type._cached_result_processor(self._dialect, None) for entry in columns)
        record = namedtuple("Record", [entry.keyname for entry in columns])  # type: ignore[misc]  # names known at run time
        out = _Compiled(
            sql=compiled.string,
            slots=_slots(compiled),
            positional=compiled.positiontup is not None,
            results=results,
            make_row=record._make if columns else tuple,  # text() statements declare no columns
        )
        # Keyed by identity and holding the statement, so a freed statement's id cannot be mistaken for it. The
        # store builds its statements once (claims once per list of queues, within a bound), so this stays small;
        # the bound only stops a caller that builds statements per call from growing it without end.
        if len(self._compiled) >= MAX_COMPILED:
            self._compiled.clear()
        self._compiled[id(stmt)] = (stmt, out)
        return out

    def _on_loop_engine(self) -> Engine | None:
        """The engine of this event loop's statements, when called inside a store call on the loop."""
        if self._make_loop_engine is None or not on_loop():
            return None
        loop = asyncio.get_running_loop()
        current = self._loop_engine
        if current is None or current[0] is not loop or current[1] != self._generation:
            if current is not None:
                # Another loop's connections cannot be closed from this one, and lost ones need no closing:
                # dropped, they close when collected.
                current[2].dispose(close=False)
            current = self._loop_engine = (loop, self._generation, self._make_loop_engine())
        return current[2]

    def _checkout(self) -> tuple[Any, Any]:
        """A pooled connection (a SQLAlchemy connection fairy) and its DBAPI connection."""
        fairy: Any
        loop_engine = self._on_loop_engine()
        if loop_engine is not None:
            fairy = loop_engine.raw_connection()
            return fairy, fairy.dbapi_connection  # SQLAlchemy's adapter: its calls await the driver
        if not self._per_thread:
            fairy = self._engine.raw_connection()
            return fairy, fairy.driver_connection
        local = self._local
        fairy = getattr(local, "fairy", None)
        if fairy is not None and local.generation != self._generation:
            self._forget(fairy)
            fairy = None
        if fairy is None:
            fairy = self._engine.raw_connection()
            # The DBAPI connection is kept beside it: the fairy's property costs as much as a short statement.
            local.fairy, local.conn, local.generation = fairy, fairy.driver_connection, self._generation
            with self._opened_lock:
                self._opened.append(fairy)
        return fairy, local.conn

    def _checkin(self, fairy: Any) -> None:
        if not self._per_thread:
            fairy.close()  # back to the pool

    def _forget(self, fairy: Any) -> None:
        """Close a thread's connection for good (lost, or of an older generation)."""
        if self._per_thread:
            self._local.fairy = None
            with self._opened_lock:
                if fairy in self._opened:
                    self._opened.remove(fairy)
        # A broken connection may refuse even this; it is dropped anyway.
        with contextlib.suppress(Exception):
            fairy.invalidate()

    def execute(self, stmt: ClauseElement, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit; its rows (named tuples, result processors applied)."""
        c = self._compile(stmt)
        values = [_value(slot, params) for slot in c.slots]
        args: Any = tuple(values) if c.positional else {slot.name: v for slot, v in zip(c.slots, values, strict=True)}
        for listener in STATEMENT_LISTENERS:
            listener(c.sql)
        fairy, conn = self._checkout()
        lost = False
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(c.sql, args)
                raw = cursor.fetchall() if cursor.description is not None else []
            finally:
                cursor.close()
        except self._dbapi_error as exc:
            # In autocommit a failed statement leaves nothing behind on a live connection; a dead one is dropped.
            lost = self._dialect.is_disconnect(cast(Any, exc), conn, None)
            if lost:
                self._generation += 1
                self._forget(fairy)
                self._on_lost()
            raise DBAPIError.instance(
                c.sql, args, exc, self._dbapi_error, connection_invalidated=lost, dialect=self._dialect
            ) from exc
        finally:
            if not lost:
                self._checkin(fairy)  # whatever else went wrong, a pooled connection goes back
        if not any(c.results):
            return [c.make_row(r) for r in raw]
        return [c.make_row(p(v) if p else v for p, v in zip(c.results, r, strict=True)) for r in raw]

    def dispose_on_loop(self) -> None:
        """Close this loop's connections (run inside a store call on the loop, where closing them can await)."""
        if self._loop_engine is not None:
            loop_engine, self._loop_engine = self._loop_engine[2], None
            loop_engine.dispose()

    def dispose(self) -> None:
        if self._loop_engine is not None:
            self._loop_engine[2].dispose(close=False)  # outside the loop they cannot be closed: dropped
            self._loop_engine = None
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for fairy in opened:
            with contextlib.suppress(Exception):  # closing at shutdown: nothing to do about a failure
                fairy.close()
        self._local = threading.local()
        self._engine.dispose()


def _slots(compiled: SQLCompiler) -> tuple[_Slot, ...]:
    """The statement's bind values, resolved once (see _Slot)."""
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    processors = compiled._bind_processors  # the same processors SQLAlchemy applies
    slots = []
    for name in compiled.positiontup if compiled.positiontup is not None else by_name:
        bind = by_name[name]
        process = processors.get(name)
        if (
            bind.expanding
            or bind.literal_execute
            or bind.callable is not None
            or not (process is None or callable(process))
        ):
            raise ValueError(
                "fleet.db.direct runs statements with plain scalar parameters only; use a store connection"
            )
        value = bind.effective_value
        default = _REQUIRED if bind.required else (process(value) if process else value)
        slots.append(_Slot(name, bind.key, process, default))
    return tuple(slots)


def _value(slot: _Slot, params: Mapping[str, Any]) -> Any:
    if slot.key in params:
        value = params[slot.key]
        return slot.process(value) if slot.process is not None else value
    if slot.default is _REQUIRED:
        raise InvalidRequestError(f"A value is required for bind parameter {slot.key!r}")  # as SQLAlchemy says
    return slot.default
