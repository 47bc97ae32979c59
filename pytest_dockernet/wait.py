"""Readiness strategies for ``wait=``: ``wait.port(6379)``, ``wait.http(8080, "/health")``...

The public face of :mod:`pytest_dockernet.core.wait`, where they live and where the
module's notes say how each one probes: the same objects, under the name users import.
"""

from __future__ import annotations

from .core.wait import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_INTERVAL,
    DEFAULT_TIMEOUT,
    Strategy,
    WaitArgument,
    all_of,
    command,
    healthy,
    http,
    log,
    port,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_INTERVAL",
    "DEFAULT_TIMEOUT",
    "Strategy",
    "WaitArgument",
    "all_of",
    "command",
    "healthy",
    "http",
    "log",
    "port",
]
