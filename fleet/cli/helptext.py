"""Help text pieces shared by the `fleet` commands."""

from __future__ import annotations


def examples(*lines: str) -> str:
    """The `Examples:` block every command's --help ends with."""
    return "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)
