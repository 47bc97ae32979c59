"""Taking the plugin's file locks: briskly, within a time-out, and one sentence when not had.

filelock polls a contended lock every 50 ms by default; allocations under ``-n 2`` waited
50-100 ms on one in four acquisitions for a lock held a few milliseconds. Polling every
2 ms costs a failed ``flock`` each time, nothing more.
"""

from __future__ import annotations

import filelock

from ..errors import LockTimeoutError, StateDirError
from .statedir import HOW_TO_MOVE

POLL_SECONDS = 0.002


def acquire(lock: filelock.BaseFileLock, timeout: float, what: str, holder: str = "another process") -> None:
    """Acquire ``lock`` within ``timeout`` seconds, or raise :class:`LockTimeoutError` naming it.

    ``what`` names the lock in the message (``"the subnet lock"``); ``holder`` says who holds it.
    """
    try:
        lock.acquire(timeout=timeout, poll_interval=POLL_SECONDS)
    except filelock.Timeout:
        raise LockTimeoutError(
            f"could not acquire {what} {lock.lock_file} within {timeout:g} s: {holder} holds it"
        ) from None
    except OSError as exc:  # the lock file cannot be made: a read-only or full state directory
        raise StateDirError(
            f"cannot create {what} {lock.lock_file} ({exc.strerror or exc}): {HOW_TO_MOVE}"
        ) from None
