"""How the plugin words what it counts, for people reading a summary or a command's output."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 network``, ``2 networks``, ``0 networks`` (``noun`` is the singular)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def joined(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
