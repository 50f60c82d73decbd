"""fleet.db.direct on SQLite and PostgreSQL: single statements on the DBAPI connection, with SQLAlchemy's types,
errors and statement listeners, one connection per thread, all closed with the store."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError

from fleet.db.dialect import UTCDateTime
from fleet.db.direct import STATEMENT_LISTENERS
from fleet.db.models import jobs, queues
from fleet.store import Store
from tests.fleet.conftest import FakeClock
from tests.fleet.test_store import submit


def test_rows_come_back_with_the_column_types(store: Store) -> None:
    job_id = submit(store, repositoryDirectory="src")
    when = datetime(2026, 12, 3, 10, 30, 15, 123456, tzinfo=UTC)
    stmt = (
        update(jobs)
        .where(jobs.c.id == bindparam("t_id"))
        .values(process_after=bindparam("t_when", type_=UTCDateTime))
        .returning(jobs.c.id, jobs.c.spec, jobs.c.process_after)
    )
    rows = store.db.run_one(stmt, {"t_id": job_id, "t_when": when + timedelta(hours=1)})
    [(got_id, spec, process_after)] = rows
    assert got_id == job_id
    assert spec["repositoryDirectory"] == "src"  # JSON decoded, as through a SQLAlchemy connection
    assert process_after == when + timedelta(hours=1) and process_after.tzinfo is not None
    assert store.jobs.get(job_id).process_after == process_after  # what SQLAlchemy reads back is the same
    assert store.db.run_one(stmt, {"t_id": job_id + 1000, "t_when": when}) == []


def test_bind_values_are_what_sqlalchemy_would_bind(store: Store) -> None:
    """The values resolved at compile time (fleet.db.direct._slots) against SQLAlchemy's own construct_params and
    bind processors, for the store's hot statements with the store's parameters: the same values in the same
    order, literals of the statement included; a missing parameter is refused as SQLAlchemy refuses it."""
    from sqlalchemy.exc import InvalidRequestError
    from sqlalchemy.sql.compiler import SQLCompiler

    from fleet.db import direct
    from fleet.store import logs, transitions

    when = datetime(2026, 12, 3, 10, 30, 15, 123456, tzinfo=UTC)
    writer = {"w_job_id": 7, "w_queue": "batches", "w_executor": "exec-a", "w_token_hash": "ab" * 32}
    entry = {f"v_{k}": v for k, v in (("key", "k"), ("command", ["true"]), ("start_time", when))}
    entry |= {"v_exit_code": 0, "v_out": "ok", "v_duration_ms": 3}
    finish = {**writer, "f_state": "completed", "f_message": None, "f_now": when}
    claim = {"c_now": when, "c_executor": "exec-a", "c_token_hash": "cd" * 32}
    cases = [
        (transitions._FINISH[True], finish),
        (logs._ADD[True], {**writer, **entry}),
        (store.jobs._claim_statement(("batches",)), claim),
    ]
    dialect = store.db.engine.dialect
    for stmt, params in cases:
        compiled = stmt.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        expected = compiled.construct_params(params)
        for name, process in compiled._bind_processors.items():
            expected[name] = process(expected[name])
        slots = direct._slots(compiled)
        got = {slot.name: direct._value(slot, params) for slot in slots}
        assert _comparable(got) == _comparable(expected)
        if compiled.positiontup is not None:
            assert [slot.name for slot in slots] == list(compiled.positiontup)
        with pytest.raises(InvalidRequestError):
            direct._value(next(s for s in slots if s.default is direct._REQUIRED), {})


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    # psycopg's Json wrapper has no equality of its own: compare what it wraps.
    return {k: (type(v), v.obj) if hasattr(v, "obj") else v for k, v in values.items()}


def test_errors_are_sqlalchemy_errors_and_the_connection_stays_usable(store: Store) -> None:
    row = {"name": "batches", "max_retries": 1, "retry_delay_seconds": 1.0, "created_at": datetime.now(UTC)}
    with pytest.raises(IntegrityError):  # the queue exists: a duplicate primary key
        store.db.run_one(queues.insert().values(**row), {})
    store.queues.ensure(["batches"])
    job_id = submit(store)
    claim = store.jobs.claim(["batches"], "exec-a")  # the same thread's direct connection, after the error
    assert claim is not None and claim.id == job_id


def test_statement_listeners_see_each_direct_statement(store: Store) -> None:
    seen: list[str] = []
    STATEMENT_LISTENERS.append(seen.append)
    try:
        submit(store)
        claim = store.jobs.claim(["batches"], "exec-a")
        assert claim is not None
        store.logs.add("batches", claim.id, "exec-a", _entry(), token=claim.token)
        store.transitions.mark_complete("batches", claim.id, "exec-a", token=claim.token)
    finally:
        STATEMENT_LISTENERS.remove(seen.append)
    # The submission to a queue the store created is one statement too, then (PostgreSQL) its NOTIFY.
    notify = ["SELECT"] if store.db.engine.dialect.name == "postgresql" else []
    assert [s.split()[0] for s in seen] == ["INSERT", *notify, "UPDATE", "INSERT", "UPDATE"], seen


def test_postgresql_sessions_stay_flat_under_claims_and_end_with_the_store(pg_cluster: Any, clock: FakeClock) -> None:
    """Direct statements on PostgreSQL borrow the single-statement pool: after a first burst of claims from 8
    threads, a second burst opens no session (pg_stat_database.sessions counts every session ever opened), and
    closing the store ends them all."""
    url = pg_cluster.create_database()

    def sessions() -> tuple[int, int]:
        """(open now, ever opened) on this database."""
        return pg_cluster.sessions(url)  # type: ignore[no-any-return]

    store = Store.open(url, clock)
    claimed: list[int] = []

    def burst() -> None:
        go = threading.Barrier(8)

        def claimer() -> None:
            go.wait()
            for _ in range(5):
                claim = store.jobs.claim(["batches"], f"exec-{threading.get_ident()}")
                assert claim is not None
                claimed.append(claim.id)

        threads = [threading.Thread(target=claimer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        store.queues.ensure(["batches"])
        for _ in range(80):
            submit(store)
        burst()
        _, opened = sessions()
        burst()
        assert sessions()[1] == opened  # no session opened by the second burst
        assert len(set(claimed)) == 80  # every job handed out once
    finally:
        store.close()
    # A backend leaves pg_stat_activity a moment after its client hangs up: wait for that, within a bound.
    deadline = time.monotonic() + 60
    while sessions()[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sessions()[0] == 0


def _entry() -> dict[str, Any]:
    return {
        "key": "step.docker.0",
        "command": ["true"],
        "startTime": datetime.now(UTC),
        "exitCode": 0,
        "out": "ok\n",
        "durationMs": 1,
    }
