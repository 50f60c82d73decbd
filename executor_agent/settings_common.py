"""Settings plumbing shared by the agent, `fleet` and `metrics-publisher`: one-line errors, common checks and the
warning about unknown variables.

It lives in the agent because the agent ships alone (the one-file executor) and may import nothing of `fleet/`;
the control plane and the publisher import it from here. Each program keeps its own wording of a problem (the
messages are documented and tested); what is shared is how a pydantic error is taken apart and joined into one
line, and the checks themselves.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """One error of a ValidationError, reduced to what the one-line messages are made of."""

    loc: tuple[str, ...]
    msg: str  # pydantic's message without the "Value error, " it puts before a validator's ValueError
    kind: str
    input: Any = None
    has_input: bool = False  # a model-level error carries the whole input (a dict), a missing field none
    ctx: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The dotted path of the value (`pools.0.name`); empty for a model-level error."""
        return ".".join(self.loc)

    @property
    def name(self) -> str | None:
        """The top-level field or variable name; None for a model-level error."""
        return self.loc[0] if self.loc else None


def problems(exc: ValidationError) -> list[Problem]:
    found = []
    for err in exc.errors(include_url=False):
        found.append(
            Problem(
                loc=tuple(str(p) for p in err.get("loc", ())),
                msg=str(err.get("msg", "invalid")).removeprefix("Value error, "),
                kind=str(err.get("type", "")),
                input=err.get("input"),
                has_input="input" in err,
                ctx=err.get("ctx") or {},
            )
        )
    return found


def one_line(
    exc: ValidationError,
    render: Callable[[Problem], str],
    *,
    prefix: str = "",
    sep: str = "; ",
    first_only: bool = False,
) -> str:
    """`exc` as one line (or, with sep="\\n", one line per problem): `prefix` (e.g. the config file's path) then
    each problem as `render` words it. `first_only` reports only the first problem, for messages that end in a
    single fix."""
    found = problems(exc)
    return prefix + sep.join(render(p) for p in (found[:1] if first_only else found))


def is_host_port(value: str, *, min_port: int = 0) -> bool:
    """HOST:PORT with a numeric port; HOST may be empty (all interfaces). Port 0 (any free port) unless
    `min_port` says otherwise."""
    _, sep, port = value.rpartition(":")
    return bool(sep) and port.isascii() and port.isdigit() and min_port <= int(port) < 65536


def split_host_port(value: str, default_host: str) -> tuple[str, int]:
    """A value `is_host_port` accepted, as (host, port); an empty host is `default_host`."""
    host, _, port = value.rpartition(":")
    return host or default_host, int(port)


def is_http_url(value: str) -> bool:
    """An http(s) URL with a host and, if any, a numeric port."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_one_of(value: str, choices: Collection[str], *, show_value: bool = True, fold_case: bool = False) -> str:
    """`value` if it is one of `choices`, else ValueError listing them. `show_value=False` where the line already
    shows the value; `fold_case` compares in lower case."""
    if (value.lower() if fold_case else value) not in choices:
        listed = ", ".join(choices)
        raise ValueError(f"{value!r} is not one of {listed}" if show_value else f"must be one of {listed}")
    return value


def unknown_variables(
    environ: Mapping[str, str],
    *,
    prefix: str,
    known: Sequence[str],
    what: str,
    program: str = "",
    read_elsewhere: Collection[str] = (),
    read_elsewhere_prefixes: tuple[str, ...] = (),
) -> list[str]:
    """One warning per `prefix`* variable nothing reads, with the closest `known` name (a misspelling is likely).

    `read_elsewhere` (and names starting with `read_elsewhere_prefixes`) are read by other programs on the same
    hosts: not warned about, and not suggested either, since they are not settings of this program.
    """
    lines = []
    for name in sorted(environ):
        if not name.startswith(prefix) or name in known or name in read_elsewhere:
            continue
        if name.startswith(read_elsewhere_prefixes):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"{program}warning: {name} is not {what} and is ignored{hint}")
    return lines
