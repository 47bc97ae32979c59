"""Calls run side by side on threads, finished whole even when the waiting thread is interrupted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import TypeVar

from ..errors import DockernetError

T = TypeVar("T")

MAX_THREADS = 8


class Cancelled(Exception):
    """A call of :func:`run_together` stopped waiting because the thread that waits for it was
    interrupted; the interruption itself is what the caller sees."""


def run_together(
    calls: Sequence[Callable[[threading.Event], T]], *, name: str, threads: int = MAX_THREADS
) -> list[Future[T]]:
    """Run ``calls`` on up to ``threads`` threads; return their futures, in order, all done.

    Each call is given an event that is set when the waiting thread is interrupted (Ctrl-C,
    pytest-timeout's signal, any ``BaseException``): a call that waits (for a service to be
    ready) checks it and stops with :class:`Cancelled`, after removing what it made. The
    interruption is raised once the calls already running have finished, and those not yet
    begun never run, so nothing a call starts appears after the teardown that follows.
    """
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max(1, min(len(calls), threads)), thread_name_prefix=name)
    futures = [pool.submit(call, cancel) for call in calls]
    try:
        wait_all(futures)
    except BaseException:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return futures


def wait_all(futures: Sequence[Future[T]]) -> None:
    """Return when every one of ``futures`` is done."""
    # On the main thread, where signals interrupt (pytest-timeout, Ctrl-C), by sleeping: an
    # exception a signal handler raises inside a Condition's wait can leave its lock released
    # and surface as "RuntimeError: release unlocked lock" in place of the interruption.
    if threading.current_thread() is threading.main_thread():
        while not all(future.done() for future in futures):
            time.sleep(0.01)
    else:
        wait_for(futures)


def first_error(futures: Sequence[Future[T]]) -> BaseException | None:
    """The error of the first future that failed, in order, or None (see :func:`shown`)."""
    for future in futures:
        if not future.cancelled() and future.exception() is not None:
            return shown(future.exception())
    return None


def shown(error: BaseException | None) -> BaseException | None:
    """An error of a call run on a thread, ready to be raised on the caller's: one of the
    plugin's own loses the thread's frames (its sentence says it all), any other keeps them."""
    if isinstance(error, DockernetError):
        return error.with_traceback(None)
    return error
