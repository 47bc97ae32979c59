"""Which process made a resource, and whether that very process still runs.

A pid alone is not an identity: the kernel recycles pids, so a run whose labelled pid now
belongs to an unrelated process would look alive forever. A process is therefore recorded
as its pid and its start time, and is alive only while a process with that pid *and* that
start time exists (and is not a zombie). psutil reads both portably (``/proc`` on Linux,
``sysctl`` on macOS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

# Start times are written with two decimals (the kernel counts in 1/100 s ticks); two
# readings of one process's start time never differ by more than this.
START_TOLERANCE = 0.05


def start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if it does not exist."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def format_start(started: float | None) -> str:
    """A start time as written in labels and files."""
    return "" if started is None else f"{started:.2f}"


def parse_start(text: str | None) -> float | None:
    """The inverse of :func:`format_start`; None for a missing or malformed value."""
    try:
        return float(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ProcessRef:
    """A process of this host: its pid and, when known, its start time."""

    pid: int
    started: float | None = None

    @classmethod
    def current(cls) -> ProcessRef:
        """This process."""
        return cls.of(os.getpid())

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        """Process ``pid`` as it is now (its start time read from the system)."""
        return cls(pid, start_time(pid))

    def alive(self) -> bool:
        """Whether this process exists, is not a zombie, and is the one that was recorded.

        A pid now held by a process that started at another time is a recycled pid: the
        recorded process is dead. Without a recorded start time only the pid is checked.
        """
        if self.pid <= 0:
            return False
        try:
            process = psutil.Process(self.pid)
            if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return False
            if self.started is None:
                return True
            return abs(process.create_time() - self.started) <= START_TOLERANCE
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True  # another user's process: it exists, and we cannot tell more

    def __str__(self) -> str:
        return str(self.pid)
