"""Errors the store raises. They carry a message for people; routes decide the HTTP status."""

from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class StoreError(Exception):
    pass


class NotFound(StoreError):
    """The thing does not exist, or is not visible to the caller (e.g. a job another executor owns)."""


class Conflict(StoreError):
    """The request is valid but the current state does not allow it."""


class UnknownQueue(NotFound):
    pass


class InvalidInput(StoreError):
    pass


# What an unreachable or overloaded database raises (not the store's own errors): the app answers 503 for these
# and the maintenance services retry their next round.
DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
