"""Store calls on the event loop (PostgreSQL): no hand-over to a worker thread for the protocol's hot statements.

A store function is plain blocking code. Handed to a worker thread, each call costs two thread wake-ups, and
on PostgreSQL those cost a third of a protocol call's server CPU (docs/control-plane.md, "Performance notes").
So fleet.store.Store.call first runs the function in a greenlet on the event loop (SQLAlchemy's greenlet_spawn,
the machinery of its asyncio extension): the statements it runs through fleet/db/direct.py await the async
psycopg driver there instead of blocking. Every other store connection blocks, so opening one on the loop raises
NeedsThread before it connects, and Store.call runs the whole function again in a worker thread. That is safe
only while the function has changed nothing: a direct statement that returned rows (every hot statement has
RETURNING, so no rows means no change) marks the call, and a blocking connection after that is a programming
error, raised as such rather than rerun. A statement nobody waits for (a submission's NOTIFY) runs after the
call, as a call of its own (later()), so neither the reply nor a woken waiter's claim queues behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import greenlet
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

T = TypeVar("T")
log = logging.getLogger(__name__)

_WROTE = "fleet_wrote"  # an attribute of the call's greenlet


class NeedsThread(Exception):
    """The store function reached a blocking store connection: run it in a worker thread instead."""


def on_loop() -> bool:
    """Whether this code runs inside a store call on the event loop."""
    return in_greenlet()


def wrote() -> None:
    """A direct statement of this call changed rows: from now on the call cannot move to a thread."""
    if in_greenlet():
        setattr(greenlet.getcurrent(), _WROTE, True)


def blocking_connection() -> None:
    """Called where a store function opens a blocking connection: refused on the loop (see the module's doc)."""
    if not in_greenlet():
        return
    if getattr(greenlet.getcurrent(), _WROTE, False):
        raise RuntimeError(
            "a store function opened a blocking store connection on the event loop after a direct statement "
            "changed rows; run its blocking part first (fleet/db/on_loop.py)"
        )
    raise NeedsThread


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store function on the loop; NeedsThread when it needs a worker thread (nothing was changed)."""
    result: T = await greenlet_spawn(fn, *args, **kwargs)
    return result


_later: set[asyncio.Task[Any]] = set()  # held here: the loop keeps only weak references to tasks


def later(fn: Callable[..., Any], *args: Any) -> bool:
    """Inside a store call on the loop: run fn(*args) as a call of its own once this one yields, for a statement
    nobody waits for (a NOTIFY to other server processes); a failure is logged. False elsewhere: the caller runs
    it itself."""
    if not in_greenlet():
        return False
    task = asyncio.get_running_loop().create_task(run(fn, *args))
    _later.add(task)
    task.add_done_callback(_finished)
    return True


def _finished(task: asyncio.Task[Any]) -> None:
    _later.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("a deferred store statement failed: %s", task.exception())


async def drain() -> None:
    """Wait for this loop's later() statements (before its connections close)."""
    loop = asyncio.get_running_loop()
    mine = [t for t in _later if t.get_loop() is loop]
    if mine:
        await asyncio.gather(*mine, return_exceptions=True)
