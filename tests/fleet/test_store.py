"""The job store on SQLite and PostgreSQL: every state change, with an injected clock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from fleet.api.views import dequeue_view, job_view, queue_view
from fleet.schemas import JobSubmission
from fleet.store import Store
from fleet.store.errors import Conflict, InvalidInput, NotFound, UnknownQueue
from fleet.store.lifecycle import RESET_FAILURE_MESSAGE
from fleet.store.logs import TRUNCATION_MARKER
from tests.fleet.conftest import FakeClock


def submit(store: Store, queue: str = "batches", **spec: Any) -> int:
    body = {"queue": queue, "dockerSteps": [{"image": "busybox", "commands": ["true"]}], **spec}
    return int(store.jobs.submit(JobSubmission(**body)).id)


def test_submit_claim_complete(store: Store) -> None:
    job_id = submit(store)
    assert store.jobs.get(job_id).state == "queued"
    job = store.jobs.claim(["batches"], "exec-a")
    assert job is not None
    reply = json.loads(dequeue_view(job))
    assert reply["id"] == job_id and reply["version"] == 2 and reply["queue"] == "batches"
    assert reply["token"] and reply["dockerSteps"][0]["image"] == "busybox"
    # The stored spec, spliced into the reply as it is, reads back as the spec submitted.
    rest = {k: v for k, v in reply.items() if k not in ("version", "id", "queue", "token")}
    assert rest == store.jobs.get(job_id).spec
    assert store.jobs.claim(["batches"], "exec-b") is None
    assert store.jobs.get(job_id).state == "processing"
    assert store.jobs.scope_of_token(job.token).job_id == job_id  # type: ignore[union-attr]
    store.transitions.mark_complete("batches", job_id, "exec-a")
    rec = store.jobs.get(job_id)
    assert rec.state == "completed" and job_view(rec)["finishedAt"]
    # The token dies with the attempt.
    assert store.jobs.scope_of_token(job.token) is None


def test_claim_is_fifo_and_multi_queue(store: Store) -> None:
    a = submit(store, "codeintel")
    b = submit(store, "batches")
    c = submit(store, "batches")
    got = [store.jobs.claim(["batches", "codeintel"], "e").id for _ in range(3)]  # type: ignore[union-attr]
    assert got == [a, b, c]


def test_unknown_queue(store: Store) -> None:
    with pytest.raises(UnknownQueue, match="fleet queues add nope"):
        submit(store, "nope")
    with pytest.raises(UnknownQueue):
        store.jobs.claim(["nope"], "e")


def test_unregistered_repository_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="fleet repos add"):
        submit(store, repositoryName="github.com/x/y", commit="a" * 40)  # the queue not yet seen: a transaction
    first = submit(store)
    with pytest.raises(InvalidInput, match="fleet repos add"):  # the queue seen: the one-statement submission
        submit(store, repositoryName="github.com/x/y", commit="a" * 40)
    store.repos.add("github.com/x/y", "/srv/y")
    job_id = submit(store, repositoryName="github.com/x/y", commit="a" * 40)
    assert job_id == first + 1  # nothing was inserted for the refused ones
    assert store.jobs.get(job_id).repository_name == "github.com/x/y"


def test_writes_only_from_owner(store: Store) -> None:
    job_id = submit(store)
    store.jobs.claim(["batches"], "exec-a")
    with pytest.raises(NotFound):
        store.transitions.mark_complete("batches", job_id, "exec-b")
    with pytest.raises(NotFound):
        store.transitions.mark_complete("codeintel", job_id, "exec-a")
    with pytest.raises(NotFound):
        store.logs.add("batches", job_id, "exec-b", {"key": "k", "startTime": datetime.now(UTC)})
    assert store.jobs.get(job_id).state == "processing"


def test_errored_retries_after_delay_then_fails(store: Store, clock: FakeClock) -> None:
    job_id = submit(store)
    for attempt in (1, 2):
        job = store.jobs.claim(["batches"], "e")
        assert job is not None and job.id == job_id
        out = store.transitions.mark_errored("batches", job_id, "e", f"boom {attempt}")
        assert out.state == "errored"
        rec = store.jobs.get(job_id)
        assert rec.num_failures == attempt and rec.failure_message == f"boom {attempt}"
        # Not before the retry delay (30 s) has passed.
        clock.advance(29)
        assert store.jobs.claim(["batches"], "e") is None
        clock.advance(2)
    store.jobs.claim(["batches"], "e")
    assert store.transitions.mark_errored("batches", job_id, "e", "boom 3").state == "failed"
    rec = store.jobs.get(job_id)
    assert rec.state == "failed" and rec.num_failures == 3 and rec.attempt == 3


def test_mark_failed(store: Store) -> None:
    job_id = submit(store)
    store.jobs.claim(["batches"], "e")
    store.transitions.mark_failed("batches", job_id, "e", "bad step")
    rec = store.jobs.get(job_id)
    assert rec.state == "failed" and rec.failure_message == "bad step"


def test_cancel_queued_is_immediate(store: Store) -> None:
    job_id = submit(store)
    assert store.jobs.cancel(job_id).state == "canceled"
    assert store.jobs.claim(["batches"], "e") is None
    with pytest.raises(Conflict):
        store.jobs.cancel(job_id)
    with pytest.raises(NotFound):
        store.jobs.cancel(999999)


def test_cancel_processing_goes_through_heartbeat(store: Store) -> None:
    job_id = submit(store)
    store.jobs.claim(["batches"], "e")
    assert store.jobs.cancel(job_id).state == "processing"
    known, cancel = store.executors.heartbeat(["batches"], {"name": "e", "hostname": "h"}, [job_id])
    assert known == [job_id] and cancel == [job_id]
    # Whatever the executor reports afterwards, the job ends canceled.
    store.transitions.mark_failed("batches", job_id, "e", "killed")
    assert store.jobs.get(job_id).state == "canceled"


def test_heartbeat_known_ids_and_executor_record(store: Store) -> None:
    mine = submit(store)
    theirs = submit(store)
    store.jobs.claim(["batches"], "e1")
    store.jobs.claim(["batches"], "e2")
    info = {"name": "e1", "hostname": "h1", "os": "linux", "architecture": "amd64", "git_version": "2.39"}
    known, cancel = store.executors.heartbeat(["batches"], info, [mine, theirs, 4242])
    assert known == [mine] and cancel == []
    rows = store.executors.list_executors()
    assert [(r.name, r.os, r.git_version, r.queue_names) for r in rows] == [("e1", "linux", "2.39", ["batches"])]


def test_resetter_requeues_then_fails(store: Store, clock: FakeClock) -> None:
    job_id = submit(store)
    tokens = []
    for resets in range(3):
        job = store.jobs.claim(["batches"], "e")
        assert job is not None
        tokens.append(job.token)
        clock.advance(20)
        assert store.resetter.reset_stalled().requeued == []  # heartbeat still fresh enough
        clock.advance(6)
        result = store.resetter.reset_stalled()
        assert result.requeued == [(job_id, "batches")]
        rec = store.jobs.get(job_id)
        assert rec.state == "queued" and rec.num_resets == resets + 1
        assert store.jobs.scope_of_token(job.token) is None
    store.jobs.claim(["batches"], "e")
    clock.advance(26)
    assert store.resetter.reset_stalled().failed == [job_id]
    rec = store.jobs.get(job_id)
    assert rec.state == "failed" and rec.failure_message == RESET_FAILURE_MESSAGE
    assert len(set(tokens)) == 3


def test_heartbeat_keeps_job_alive(store: Store, clock: FakeClock) -> None:
    job_id = submit(store)
    store.jobs.claim(["batches"], "e")
    for _ in range(5):
        clock.advance(20)
        store.executors.heartbeat(["batches"], {"name": "e", "hostname": "h"}, [job_id])
        assert store.resetter.reset_stalled().requeued == []
    assert store.jobs.get(job_id).state == "processing"


def test_stale_attempt_refused_even_from_same_executor(store: Store, clock: FakeClock) -> None:
    job_id = submit(store)
    first = store.jobs.claim(["batches"], "e")
    clock.advance(30)
    store.resetter.reset_stalled()
    second = store.jobs.claim(["batches"], "e")
    assert first and second and first.token != second.token
    old = store.jobs.scope_of_token(first.token)
    assert old is None
    with pytest.raises(NotFound):  # the first attempt's token: refused, though the executor is the same
        store.transitions.mark_complete("batches", job_id, "e", token=first.token)
    store.transitions.mark_complete("batches", job_id, "e", token=second.token)
    assert store.jobs.get(job_id).state == "completed"


def test_log_entries_add_update_and_cap(store: Store) -> None:
    job_id = submit(store)
    store.jobs.claim(["batches"], "e")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    entry_id = store.logs.add(
        "batches", job_id, "e", {"key": "setup.git.init", "command": ["git", "init"], "startTime": start}
    )
    big = "x" * (1024 * 1024 + 10)
    store.logs.update(
        "batches",
        job_id,
        "e",
        entry_id,
        {
            "key": "setup.git.init",
            "command": ["git", "init"],
            "startTime": start,
            "exitCode": 0,
            "out": big,
            "durationMs": 12,
        },
    )
    [entry] = store.logs.for_job(job_id)
    assert entry.exit_code == 0 and entry.duration_ms == 12 and entry.attempt == 1
    assert entry.out.startswith("x" * 1000)
    assert entry.out.endswith(TRUNCATION_MARKER.format(dropped=10, limit=1024 * 1024))
    other = submit(store)
    store.jobs.claim(["batches"], "e")
    with pytest.raises(NotFound):
        store.logs.update("batches", other, "e", entry_id, {"key": "k", "startTime": start})


def test_queue_stats(store: Store, clock: FakeClock) -> None:
    a = submit(store)
    submit(store)
    clock.advance(10)
    submit(store, "codeintel")
    store.jobs.claim(["batches"], "e")
    store.transitions.mark_errored("batches", a, "e", "x")
    stats = {q.name: queue_view(q, clock()) for q in store.queues.stats()}
    assert stats["batches"]["queued"] == 1 and stats["batches"]["errored"] == 1 and stats["batches"]["size"] == 2
    assert stats["batches"]["oldestQueuedAgeSeconds"] == 10.0
    assert stats["codeintel"]["size"] == 1 and stats["codeintel"]["oldestQueuedAgeSeconds"] == 0.0


def test_queue_add_conflict(store: Store) -> None:
    store.queues.add("extra", max_retries=0)
    with pytest.raises(Conflict):
        store.queues.add("extra")
    job_id = submit(store, "extra")
    store.jobs.claim(["extra"], "e")
    assert store.transitions.mark_errored("extra", job_id, "e", "x").state == "failed"


def test_postgresql_connections_killed_under_the_store(pg_cluster: Any, clock: FakeClock) -> None:
    """After a database restart, the protocol's pool (no pre-ping) fails one call and is then replaced.

    The other pool pings on checkout, so the job API does not notice.
    """
    import psycopg
    from sqlalchemy.exc import DBAPIError

    url = pg_cluster.create_database()
    store = Store.open(url, clock)
    try:
        store.queues.ensure(["batches"])
        job_id = submit(store)
        job = store.jobs.claim(["batches"], "e")
        assert job is not None and store.jobs.scope_of_token(job.token) is not None
        database = url.rsplit("/", 1)[1]
        with psycopg.connect(pg_cluster.admin_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (database,)
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        assert store.jobs.get(job_id).state == "processing"
        failures = 0
        for _ in range(3):
            try:
                store.transitions.mark_complete("batches", job_id, "e", token=job.token)
                break
            except DBAPIError as exc:
                assert exc.connection_invalidated, exc
                failures += 1
        assert failures == 1
        assert store.jobs.get(job_id).state == "completed"
        assert store.jobs.scope_of_token(job.token) is None
    finally:
        store.close()


def test_postgresql_announces_ready_jobs(pg_cluster: Any, clock: FakeClock) -> None:
    """Submits and resets NOTIFY on commit (queue, count of jobs, due time, origin), so every server process can
    wake its long polls; the process that sent it ignores its own (it woke its waiters in memory)."""
    import psycopg

    from fleet.db.dialect import QUEUE_CHANNEL, listen_dsn, parse_ready_payload

    url = pg_cluster.create_database()
    store = Store.open(url, clock)
    try:
        store.queues.ensure(["batches", "indexing"])
        dsn = listen_dsn(store.db.engine)
        assert dsn is not None
        with psycopg.connect(dsn, autocommit=True) as listener:
            listener.execute(f"LISTEN {QUEUE_CHANNEL}")
            submit(store, queue="indexing")
            heard = [n.payload for n in listener.notifies(timeout=60, stop_after=1)]
            assert [p.split(" ")[:3] for p in heard] == [["indexing", "1", "-"]]
            assert parse_ready_payload(heard[0]) is None  # sent by this process
            job = store.jobs.claim(["indexing"], "e")
            assert job is not None
            assert list(listener.notifies(timeout=0.3)) == []  # a claim announces nothing
            clock.advance(26)
            assert store.resetter.reset_stalled().requeued == [(job.id, "indexing")]
            heard = [n.payload for n in listener.notifies(timeout=60, stop_after=1)]
            assert [p.split(" ")[:3] for p in heard] == [["indexing", "1", "-"]]
    finally:
        store.close()


def test_postgresql_database_in_sql_ascii_works_in_utf8(pg_cluster: Any, clock: FakeClock) -> None:
    """initdb without a locale (a bare container) makes SQL_ASCII databases, on which psycopg returns bytes for
    text unless the connection asks for UTF-8: the server's first query failed there (dist's compose file)."""
    import psycopg

    from fleet.db.dialect import QUEUE_CHANNEL, listen_dsn

    store = Store.open(pg_cluster.create_database(encoding="SQL_ASCII"), clock)
    try:
        with store.db.read() as conn:
            assert conn.exec_driver_sql("SHOW server_encoding").scalar() == "SQL_ASCII"
        store.queues.ensure(["batches"])
        job_id = submit(store, dockerSteps=[{"image": "alpine", "commands": ["echo héllo ✓"]}])
        assert store.jobs.get(job_id).spec["dockerSteps"][0]["commands"] == ["echo héllo ✓"]
        dsn = listen_dsn(store.db.engine)
        assert dsn is not None
        with psycopg.connect(dsn, autocommit=True) as listener:
            listener.execute(f"LISTEN {QUEUE_CHANNEL}")
            submit(store)
            assert [n.payload.split(" ")[0] for n in listener.notifies(timeout=60, stop_after=1)] == ["batches"]
    finally:
        store.close()


def test_sqlite_has_nothing_to_listen_to(tmp_path: Any, clock: FakeClock) -> None:
    from fleet.db.dialect import listen_dsn

    store = Store.open(f"sqlite:///{tmp_path}/fleet.db", clock)
    try:
        assert listen_dsn(store.db.engine) is None
        store.queues.ensure(["batches"])
        submit(store)  # announcing is a no-op here, and must not fail
        assert store.jobs.claim(["batches"], "e") is not None
    finally:
        store.close()


def test_postgresql_claim_plan_walks_the_claim_index(pg_cluster: Any, clock: FakeClock) -> None:
    """The claim's cached generic plan must probe ix_jobs_claim, never walk the primary key and filter.

    Walking the primary key looks cheap to the planner when the statistics say most jobs are queued, but it
    steps over every claimed job, and over the whole table for a queue with nothing ready.
    """
    import re

    import psycopg

    url = pg_cluster.create_database()
    store = Store.open(url, clock)
    try:
        store.queues.ensure(["batches", "indexing"])
        submit(store)
        dsn = url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(dsn, autocommit=True) as conn:
            columns = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'"
                    " AND column_name NOT IN ('id', 'token_hash')"
                )
            ]
            cols = ", ".join(columns)
            conn.execute(f"INSERT INTO jobs ({cols}) SELECT {cols} FROM jobs, generate_series(1, 5000)")  # type: ignore[arg-type]
            conn.execute("ANALYZE jobs")
            for _ in range(50):  # the front of the backlog is now claimed
                assert store.jobs.claim(["batches"], "e") is not None
            compiled = store.jobs._claim_statement(("batches", "indexing")).compile(dialect=store.db.engine.dialect)
            names: list[str] = []

            def numbered(m: re.Match[str]) -> str:  # psycopg's %(name)s -> PREPARE's $n
                if m[1] not in names:
                    names.append(m[1])
                return f"${names.index(m[1]) + 1}"

            sql = re.sub(r"%\((\w+)\)s", numbered, str(compiled))
            values = compiled.construct_params(
                {"c_now": datetime(2030, 1, 1, tzinfo=UTC), "c_executor": "e", "c_token_hash": "x"}
            )
            args = ", ".join("NULL" if values[n] is None else f"'{values[n]}'" for n in names)
            conn.execute(f"PREPARE claim AS {sql}")  # type: ignore[arg-type]
            conn.execute("SET plan_cache_mode = force_generic_plan")
            plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN EXECUTE claim({args})"))  # type: ignore[arg-type]
        probes = [line for line in plan.splitlines() if "Index Scan" in line or "Seq Scan" in line]
        # The outer UPDATE finds its one row by primary key; every probe must use the claim index.
        assert sum("ix_jobs_claim" in line for line in probes) == 4, plan
        assert sum("jobs_pkey" in line for line in probes) <= 1 and not any("Seq Scan" in p for p in probes), plan
    finally:
        store.close()


def test_retention_deletes_old_finished_jobs_with_their_logs(store: Store, clock: FakeClock) -> None:
    assert store.retention.delete_expired() == 0  # off by default: nothing is ever deleted
    store.db.config = replace(store.db.config, job_retention_days=3600 / 86400)
    done = submit(store)
    store.jobs.claim(["batches"], "e")
    store.logs.add("batches", done, "e", {"key": "step.0", "command": ["true"], "startTime": clock()})
    store.transitions.mark_complete("batches", done, "e")
    canceled = submit(store)
    store.jobs.cancel(canceled)
    waiting = submit(store)
    running = submit(store, "codeintel")
    assert store.jobs.claim(["codeintel"], "e") is not None
    clock.advance(1800)
    recent = submit(store)
    store.jobs.cancel(recent)
    assert store.retention.delete_expired() == 0  # nothing has been finished for an hour yet
    clock.advance(1801)
    assert store.retention.delete_expired() == 2
    for gone in (done, canceled):
        with pytest.raises(NotFound):
            store.jobs.get(gone)
        assert store.logs.for_job(gone) == []
    # Queued and running jobs are never deleted, however old; a job finished recently stays.
    assert {store.jobs.get(j).state for j in (waiting, running, recent)} == {"queued", "processing", "canceled"}
    assert store.retention.delete_expired() == 0


def test_retention_works_in_batches(store: Store, clock: FakeClock) -> None:
    from fleet.store import retention

    store.db.config = replace(store.db.config, job_retention_days=60 / 86400)
    ids = [submit(store) for _ in range(retention.BATCH + 7)]
    for job_id in ids:
        store.jobs.cancel(job_id)
    clock.advance(61)
    assert store.retention.delete_expired() == len(ids)
    assert store.jobs.list(limit=1000) == []


@pytest.mark.parametrize(
    "spec",
    ["{}", " {} ", '{"dockerSteps": [{"image": "b\\u00fcsybox", "commands": ["echo \\"hi\\""]}]}', '{"a": {}}'],
)
def test_dequeue_reply_is_the_claim_with_its_stored_spec(spec: str) -> None:
    from fleet.store.jobs import Claim

    reply = json.loads(dequeue_view(Claim(7, "batches", "tok", spec)))
    assert reply == {"version": 2, "id": 7, "queue": "batches", "token": "tok", **json.loads(spec)}
    assert list(reply)[:4] == ["version", "id", "queue", "token"]
