"""Errors the store raises. They carry a message for people; routes decide the HTTP status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

if TYPE_CHECKING:
    from fleet.store.tokens import TokenScope


class StoreError(Exception):
    pass


class NotFound(StoreError):
    """The thing does not exist, or is not visible to the caller (e.g. a job another executor owns)."""


class NotOwned(NotFound):
    """A write about a job the writer does not hold. With a job token, the token's scope as read once to say so:
    the route tells from it (and the request's headers) a token issued to another executor."""

    def __init__(self, message: str, scope: TokenScope | None = None) -> None:
        super().__init__(message)
        self.scope = scope


# The token's refusals are NotFound too: to the store's callers the job is not theirs to write either way; the
# app answers them with their own status (Starlette picks the most specific handler).
class TokenUnknown(NotFound):
    """A job token no live attempt has: never issued, or revoked when its attempt ended (401)."""


class TokenOutOfScope(NotFound):
    """A live job token used beyond what it grants: another job, queue, repository or executor (403)."""


class Conflict(StoreError):
    """The request is valid but the current state does not allow it."""


class UnknownQueue(NotFound):
    pass


class InvalidInput(StoreError):
    pass


# What an unreachable or overloaded database raises (not the store's own errors): the app answers 503 for these
# and the maintenance services retry their next round.
DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
