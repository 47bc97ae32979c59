"""Waits out a full subnet pool: for other processes' networks to go, or for a subnet just freed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from ..engine.naming import RunIdentity
from ..engine.subnets import Holder, SubnetAllocator
from ..errors import PoolExhaustedError, hide_frames_of_own_errors
from ..text import plural

T = TypeVar("T")

# How long a subnet whose network was removed is waited for, after the removal returned.
FREED_SUBNET_SECONDS = 5.0


class FullPoolWait:
    """Retries a network's creation while the pool it draws on is full.

    The pool of :attr:`allocator` may be full of networks of other processes (workers of
    this run, other runs sharing the engine): their networks go with their tests, so
    :meth:`until_others_free` waits up to ``timeout`` seconds for one, then names them.
    When only this process, or networks of no run, hold the pool, nothing will free it,
    and it fails at once.
    """

    def __init__(self, allocator: SubnetAllocator, identity: RunIdentity, timeout: float) -> None:
        self.allocator = allocator
        self.identity = identity
        self.timeout = timeout

    def until_others_free(self, create: Callable[[], T]) -> T:
        """Call ``create`` until the pool has room, while other processes hold it."""
        __tracebackhide__ = hide_frames_of_own_errors
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                return create()
            except PoolExhaustedError as exc:
                holders = self.allocator.holders()
                others = [holder for holder in holders if self.is_other(holder)]
                waited = time.monotonic() - started
                if not others and (self._explains_full(holders) or waited > FREED_SUBNET_SECONDS):
                    raise
                if others and waited > self.timeout:
                    raise self.exhausted(exc, others) from None
                # Otherwise what filled the pool a moment ago is going: another run's network
                # just removed, the route of its bridge maybe still there (seen in CI).
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            self.allocator.forget_routes()  # the route of a bridge just removed goes with it

    def until_freed(self, create: Callable[[], T]) -> T:
        """Call ``create`` until a subnet this process just freed is free on the engine too."""
        # On podman, the route of a removed network's bridge stays until netavark has torn
        # the bridge down, and podman refuses the subnet meanwhile. Read the engine and the
        # routes afresh until it is free again.
        __tracebackhide__ = hide_frames_of_own_errors
        deadline = time.monotonic() + FREED_SUBNET_SECONDS
        while True:
            self.allocator.forget_routes()
            try:
                return create()
            except PoolExhaustedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def is_other(self, holder: Holder) -> bool:
        """Whether ``holder`` is a process of this plugin other than this one."""
        own = holder.pid == str(self.identity.pid) and holder.host == self.identity.host
        return bool(holder.run) and not own

    def exhausted(self, error: PoolExhaustedError, others: list[Holder]) -> PoolExhaustedError:
        """``error``, saying how long it waited and which other processes hold the pool."""
        held = "; ".join(str(holder) for holder in others[:5])
        more = f"; and {plural(len(others) - 5, 'more process')}" if len(others) > 5 else ""
        return PoolExhaustedError(
            f"{error} — waited {self.timeout:g} s (--dockernet-pool-timeout) for networks"
            f" of other processes sharing the pool, which still hold them: {held}{more}"
        )

    def _explains_full(self, holders: list[Holder]) -> bool:
        # Networks on the engine now that fill the pool (not a route or a network just gone).
        return sum(holder.networks for holder in holders) >= self.allocator.capacity
