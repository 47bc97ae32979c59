"""Makes networks for one process of a run, and accounts for every one of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import docker

from ..engine.cleanup import CleanupFailure, is_volume_in_use
from ..engine.connection import engine_key, without_proxy_lookups
from ..engine.naming import Labels, RunIdentity
from ..engine.statedir import default_state_dir, ensure_private_dir, lock_path
from ..engine.subnets import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_POOLS,
    DEFAULT_POOLS6,
    DEFAULT_SUBNET_SIZE,
    SubnetAllocator,
)
from ..errors import PoolExhaustedError, RunEndedError, hide_frames_of_own_errors
from .full_pool import FREED_SUBNET_SECONDS, FullPoolWait
from .network import Network
from .specs import NetworkSpec
from .together import wait_all
from .volumes import Volume

# Background removals at once: the engine serializes network removals anyway, while two
# threads let one test's containers go while another's network does.
TEARDOWN_THREADS = 2
# How long a volume still used by a container being removed is waited for.
VOLUME_IN_USE_SECONDS = 30.0


@dataclass
class Tally:
    """How many resources this process created, removed, kept, or failed to remove."""

    networks_created: int = 0
    networks_removed: int = 0
    containers_created: int = 0
    containers_removed: int = 0
    kept: list[str] = field(default_factory=list)
    kept_containers: int = 0
    volumes_created: int = 0
    volumes_removed: int = 0
    kept_volumes: int = 0
    failures: list[CleanupFailure] = field(default_factory=list)
    swept_runs: list[str] = field(default_factory=list)
    swept: int = 0
    sweep_problem: str = ""

    def add(self, other: Tally) -> None:
        """Add ``other``'s counts and lists to this tally (to sum xdist workers)."""
        self.networks_created += other.networks_created
        self.networks_removed += other.networks_removed
        self.containers_created += other.containers_created
        self.containers_removed += other.containers_removed
        self.kept.extend(other.kept)
        self.kept_containers += other.kept_containers
        self.volumes_created += other.volumes_created
        self.volumes_removed += other.volumes_removed
        self.kept_volumes += other.kept_volumes
        self.failures.extend(other.failures)
        self.swept_runs.extend(other.swept_runs)
        self.swept += other.swept
        self.sweep_problem = self.sweep_problem or other.sweep_problem


class NetworkManager:
    """Creates networks with names, labels and subnets of one :class:`RunIdentity`.

    Usable without pytest::

        client = docker.from_env()
        manager = NetworkManager.for_client(client, RunIdentity(run=new_run_id()))
        with manager.create_network() as net:
            net.run("busybox", ["sleep", "60"], alias="one")

    :meth:`release` removes a network (or keeps it when ``identity.keep`` is set);
    :meth:`release_later` does it on a background thread; :meth:`close` waits for those
    and releases whatever is still alive.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        identity: RunIdentity,
        allocator: SubnetAllocator,
        *,
        engine: str | None = None,
        driver: str = "bridge",
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        self.client = without_proxy_lookups(client)  # it is used from background threads too
        self.pool_timeout = pool_timeout
        """How long a full pool is waited for while other processes' networks hold it."""
        self.driver = driver
        """The driver of every network made: ``bridge``, or ``overlay`` on a swarm manager."""
        self.identity = identity
        self.allocator = allocator
        self.engine = engine or engine_key(client)
        """The engine's identity (its ID): what the per-engine lock files are keyed by."""
        self.tally = Tally()
        self.on_change: Callable[[Tally], None] | None = None
        """Called with a copy of :attr:`tally` after each change (from any thread, one call at a
        time): the plugin stores it, so that a process that dies still leaves its counts."""
        self._reporting = threading.Lock()
        self._alive: list[Network] = []
        self._lock = threading.Lock()
        self._volumes: list[Volume] = []
        self._teardown: ThreadPoolExecutor | None = None
        self._pending: list[Future[list[CleanupFailure]]] = []
        self._last_removal = -FREED_SUBNET_SECONDS  # time.monotonic() of the last network removed
        self._prefetcher: ThreadPoolExecutor | None = None
        self._prefetched: tuple[NetworkSpec, Future[Network]] | None = None

    def changed(self) -> None:
        """Hand a copy of the tally to :attr:`on_change` (the counts just changed)."""
        if self.on_change is None:
            return
        with self._reporting:
            with self._lock:
                snapshot = replace(self.tally, kept=list(self.tally.kept), failures=list(self.tally.failures))
            self.on_change(snapshot)

    @classmethod
    def for_client(
        cls,
        client: docker.DockerClient,
        identity: RunIdentity,
        *,
        pools: Sequence[IPv4Network] = DEFAULT_POOLS,
        subnet_size: int = DEFAULT_SUBNET_SIZE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        state_dir: Path | None = None,
        pools6: Sequence[IPv6Network] = DEFAULT_POOLS6,
        driver: str = "bridge",
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> NetworkManager:
        """A manager whose allocation lock lives in the per-user state directory."""
        directory = ensure_private_dir(state_dir or default_state_dir())
        engine = engine_key(client)
        lock = lock_path(directory, "subnets", engine)
        allocator = SubnetAllocator(client, lock, pools, subnet_size, lock_timeout, pools6=pools6)
        return cls(client, identity, allocator, engine=engine, driver=driver, pool_timeout=pool_timeout)

    def create_network(
        self,
        spec: NetworkSpec | None = None,
        *,
        test: str | None = None,
        internal: bool = False,
        hermetic: bool = False,
        ipv6: bool = False,
        labels: Labels | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        """A new network on a free subnet (see :meth:`Network.create`).

        Give its settings as a :class:`NetworkSpec`, or as keywords (they make one).
        Raises :class:`RunEndedError` when the run's root process is gone: a worker
        orphaned by a killed controller must not leave anything behind the reaper's back.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        spec = spec or NetworkSpec.of(
            test=test, internal=internal, hermetic=hermetic, ipv6=ipv6, labels=labels, options=options
        )
        network = self._take_prefetched(spec) or self._create_now(spec)
        with self._lock:
            self._alive.append(network)
            self.tally.networks_created += 1
        self.changed()
        return network

    def prefetch_network(
        self,
        spec: NetworkSpec | None = None,
        *,
        test: str | None = None,
        internal: bool = False,
        hermetic: bool = False,
        ipv6: bool = False,
        labels: Labels | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        """Start creating, in the background, the network a coming :meth:`create_network`
        call with an equal spec (or the same keywords) will ask for; return at once.

        That call then takes it (waiting for it if it is still being made) instead of
        making one. A prefetched network that a call with another spec, or :meth:`close`,
        finds unused is removed, whatever ``keep`` says, and counted nowhere: it was never
        a test's. Errors of the prefetch are dropped: the call that would have taken it
        makes its network itself and raises them.
        """
        spec = spec or NetworkSpec.of(
            test=test, internal=internal, hermetic=hermetic, ipv6=ipv6, labels=labels, options=options
        )
        self._discard_prefetched()
        with self._lock:
            if self._prefetcher is None:
                self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="dockernet-prefetch")
            self._prefetched = (spec, self._prefetcher.submit(self._create_now, spec))

    def _take_prefetched(self, spec: NetworkSpec) -> Network | None:
        with self._lock:
            prefetched = self._prefetched
            if prefetched is None or prefetched[0] != spec:
                prefetched = None
            else:
                self._prefetched = None
        if prefetched is None:
            self._discard_prefetched()
            return None
        try:
            return prefetched[1].result()
        except Exception:  # noqa: BLE001 - the caller makes its network itself, and raises
            return None

    def _discard_prefetched(self) -> None:
        """Remove the prefetched network nobody took (in the background)."""
        with self._lock:
            prefetched, self._prefetched = self._prefetched, None
        if prefetched is None:
            return
        try:
            network = prefetched[1].result()
        except Exception:  # noqa: BLE001 - nothing was made
            return
        self._in_background(lambda: self._remove_unused(network))

    def _remove_unused(self, network: Network) -> list[CleanupFailure]:
        failures = [replace(failure, test=network.test or "") for failure in network.remove()]
        self.allocator.forget(network.subnet, network.subnet6)
        self._last_removal = time.monotonic()
        with self._lock:
            self.tally.failures.extend(failures)
        return failures

    def _create_now(self, spec: NetworkSpec) -> Network:
        __tracebackhide__ = hide_frames_of_own_errors
        root = self.identity.root
        if root.pid != self.identity.pid and not root.alive():
            raise RunEndedError(
                f"run {self.identity.run} is over (its root process {root.pid} is gone):"
                " this orphaned process creates no more networks"
            )

        def create() -> Network:
            return Network.create(self.client, self.allocator, self.identity, spec, driver=self.driver)

        try:
            return create()
        except PoolExhaustedError:
            # Networks still being removed in the background hold subnets: wait for them.
            with self._lock:
                pending = [future for future in self._pending if not future.done()]
                just_freed = time.monotonic() - self._last_removal < FREED_SUBNET_SECONDS
            waiting = FullPoolWait(self.allocator, self.identity, self.pool_timeout)
            if not pending and not just_freed:
                return waiting.until_others_free(create)
            wait_all(pending)
            return waiting.until_freed(create)

    def create_volume(
        self,
        *,
        test: str | None = None,
        labels: Labels | None = None,
        driver: str = "local",
        driver_opts: dict[str, str] | None = None,
    ) -> Volume:
        """A new named volume with the run's labels (see :class:`Volume`)."""
        __tracebackhide__ = hide_frames_of_own_errors
        volume = Volume.create(
            self.client, self.identity, test=test, labels=labels, driver=driver, driver_opts=driver_opts
        )
        with self._lock:
            self._volumes.append(volume)
            self.tally.volumes_created += 1
        self.changed()
        return volume

    def release_volume(self, volume: Volume) -> list[CleanupFailure]:
        """Remove ``volume`` now (kept with ``--dockernet-keep``), once no container of this
        process still being removed uses it."""
        if not self._claim_volume(volume):
            return []
        return self._remove_volume(volume)

    def release_volume_later(self, volume: Volume) -> None:
        """:meth:`release_volume` on the background thread, after the removals queued before it."""
        if self._claim_volume(volume):
            self._in_background(lambda: self._remove_volume(volume))

    def _claim_volume(self, volume: Volume) -> bool:
        with self._lock:
            if volume not in self._volumes:
                return False
            self._volumes.remove(volume)
            if self.identity.keep:
                self.tally.kept_volumes += 1
                return False
        return True

    def _remove_volume(self, volume: Volume) -> list[CleanupFailure]:
        # A container of the test may still be going (its network's removal runs beside
        # this one): "in use" is retried while removals of this process are pending.
        deadline = time.monotonic() + VOLUME_IN_USE_SECONDS
        while True:
            failure = volume.remove()
            if failure is None or not is_volume_in_use(failure.message) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        with self._lock:
            if failure is None:
                self.tally.volumes_removed += 1
            else:
                failure = replace(failure, test=volume.test or "")
                self.tally.failures.append(failure)
        self.changed()
        return [] if failure is None else [failure]

    def release(self, network: Network) -> list[CleanupFailure]:
        """Remove ``network`` and its services now, or keep them with ``--dockernet-keep``."""
        if not self._claim(network):
            return []
        return self._remove(network)

    def release_later(self, network: Network) -> None:
        """Remove ``network`` and its services on a background thread, and return at once.

        The next test starts while the engine removes this one's containers and network.
        :meth:`collect` gathers what could not be removed so far; :meth:`drain` waits for
        every pending removal. A process that dies meanwhile leaves the rest to the reaper.
        """
        if self._claim(network):
            self._in_background(lambda: self._remove(network))

    def _in_background(self, removal: Callable[[], list[CleanupFailure]]) -> None:
        with self._lock:
            if self._teardown is None:
                self._teardown = ThreadPoolExecutor(TEARDOWN_THREADS, thread_name_prefix="dockernet-teardown")
            self._pending.append(self._teardown.submit(removal))

    @property
    def pending(self) -> int:
        """How many background removals have not finished yet."""
        with self._lock:
            return sum(1 for future in self._pending if not future.done())

    def collect(self) -> list[CleanupFailure]:
        """What finished background removals could not remove (each failure once)."""
        with self._lock:
            done = [future for future in self._pending if future.done()]
            self._pending = [future for future in self._pending if not future.done()]
        return [failure for future in done for failure in future.result()]

    def drain(self) -> list[CleanupFailure]:
        """Wait for every background removal; return what could not be removed."""
        with self._lock:
            pending = list(self._pending)
        wait_all(pending)
        return self.collect()

    def _claim(self, network: Network) -> bool:
        """Take ``network`` off the alive list; False when it was not on it (released already)."""
        with self._lock:
            if network not in self._alive:
                return False
            self._alive.remove(network)
            self.tally.containers_created += network.started
            if not self.identity.keep:
                return True
            self.tally.kept.append(network.name)
            self.tally.kept_containers += len(network.services)
        return False

    def _remove(self, network: Network) -> list[CleanupFailure]:
        failures = [replace(failure, test=network.test or "") for failure in network.remove()]
        self.allocator.forget(network.subnet, network.subnet6)
        self._last_removal = time.monotonic()
        failed_containers = sum(1 for f in failures if f.kind == "container")
        with self._lock:
            self.tally.containers_removed += network.started - failed_containers
            self.tally.networks_removed += 0 if any(f.kind == "network" for f in failures) else 1
            self.tally.failures.extend(failures)
        self.changed()
        return failures

    def close(self) -> list[CleanupFailure]:
        """Wait for background removals, then release every network still alive, newest first."""
        self._discard_prefetched()
        with self._lock:
            prefetcher, self._prefetcher = self._prefetcher, None
        if prefetcher is not None:
            prefetcher.shutdown(wait=True)
        failures = self.drain()
        while True:
            with self._lock:
                if not self._alive:
                    break
                network = self._alive[-1]
            failures.extend(self.release(network))
        while True:
            with self._lock:
                if not self._volumes:
                    break
                volume = self._volumes[-1]
            failures.extend(self.release_volume(volume))
        with self._lock:
            teardown, self._teardown = self._teardown, None
        if teardown is not None:
            teardown.shutdown(wait=True)
        return failures
