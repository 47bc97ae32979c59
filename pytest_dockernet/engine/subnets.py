"""Explicit, non-overlapping subnets for every network.

Without ``--subnet`` the daemon picks a range itself, may overlap a network of the host,
and runs out after a few dozen networks. So every network gets a subnet carved from the
configured pools that overlaps nothing the engine already has (anyone's network) and no
route of this host. Choosing and creating happen under a file lock shared by every
process of this user that talks to the same engine; the engine stays the final arbiter.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from pathlib import Path
from typing import TypeVar

import docker
import docker.errors
import filelock

from ..errors import PoolExhaustedError, hide_frames_of_own_errors
from ..text import plural
from .locks import acquire
from .naming import LABEL_HOST, LABEL_PID, LABEL_RUN
from .podman import retry_interface_race

log = logging.getLogger("pytest_dockernet")

DEFAULT_POOLS = (IPv4Network("10.199.0.0/16"),)
# A unique-local (fd00::/8) /48: 65536 /64 networks, the size IPv6 hosts expect.
DEFAULT_POOLS6 = (IPv6Network("fd00:d0c:4e7::/48"),)
SUBNET6_SIZE = 64
DEFAULT_SUBNET_SIZE = 26
MIN_SUBNET_SIZE = 8
MAX_SUBNET_SIZE = 29
DEFAULT_LOCK_TIMEOUT = 60.0
# How long a full pool is waited for while other processes' networks hold it.
DEFAULT_POOL_TIMEOUT = 60.0
ROUTES_TTL_SECONDS = 5.0

T = TypeVar("T")

# Ranges a bridge network can never use: the kernel or the host owns them.
RESERVED_RANGES = (
    (IPv4Network("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (IPv4Network("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
    (IPv4Network("169.254.0.0/16"), "link-local (169.254.0.0/16)"),
    (IPv4Network("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    (IPv4Network("240.0.0.0/4"), "reserved class E and broadcast (240.0.0.0/4)"),
)


def parse_pool(text: str) -> IPv4Network:
    """Parse one pool CIDR, raising ``ValueError`` with a message fit for a user."""
    try:
        return IPv4Network(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IPv4 CIDR such as 10.199.0.0/16 ({exc})") from None


RESERVED_RANGES6 = (
    (IPv6Network("::/8"), "the unspecified, loopback and IPv4-mapped range (::/8)"),
    (IPv6Network("fe80::/10"), "link-local (fe80::/10)"),
    (IPv6Network("ff00::/8"), "multicast (ff00::/8)"),
)


def parse_pools6(values: Iterable[str]) -> tuple[IPv6Network, ...]:
    """Parse IPv6 pools given as several values, each possibly comma-separated."""
    values = list(values)
    pools = []
    for part in (part.strip() for value in values for part in value.split(",")):
        if not part:
            continue
        try:
            pool = IPv6Network(part)
        except ValueError as exc:
            raise ValueError(f"{part!r} is not an IPv6 CIDR such as fd00:d0c:4e7::/48 ({exc})") from None
        if pool.prefixlen > SUBNET6_SIZE:
            raise ValueError(f"pool {pool} cannot hold one /{SUBNET6_SIZE} network")
        for reserved, what in RESERVED_RANGES6:
            if pool.overlaps(reserved):
                raise ValueError(f"pool {pool} overlaps {what}, which no Docker network can use")
        pools.append(pool)
    if not pools:
        raise ValueError(
            f"{', '.join(map(repr, values)) or 'nothing'} holds no pool; give at least one IPv6 CIDR"
            " such as fd00:d0c:4e7::/48"
        )
    for i, pool in enumerate(pools):
        for other in pools[i + 1 :]:
            if pool.overlaps(other):
                raise ValueError(f"pools {pool} and {other} overlap")
    return tuple(pools)


def unusable_reason(pool: IPv4Network) -> str | None:
    """Why no network can ever be carved from ``pool``, or None when it can."""
    for reserved, what in RESERVED_RANGES:
        if pool.overlaps(reserved):
            return f"pool {pool} overlaps {what}, which no Docker network can use"
    return None


def parse_pools(values: Iterable[str]) -> tuple[IPv4Network, ...]:
    """Parse pools given as several values, each possibly comma-separated."""
    values = list(values)
    pools = [parse_pool(part) for value in values for part in value.split(",") if part.strip()]
    if not pools:
        raise ValueError(
            f"{', '.join(map(repr, values)) or 'nothing'} holds no pool; give at least one IPv4 CIDR"
            " such as 10.199.0.0/16"
        )
    for pool in pools:
        problem = unusable_reason(pool)
        if problem:
            raise ValueError(f"{problem}; use a private range such as 10.199.0.0/16")
    for i, pool in enumerate(pools):
        for other in pools[i + 1 :]:
            if pool.overlaps(other):
                raise ValueError(f"pools {pool} and {other} overlap")
    return tuple(pools)


def check_pools_fit(pools: Sequence[IPv4Network], subnet_size: int) -> str | None:
    """Return why ``/subnet_size`` networks cannot be carved from ``pools``, or None."""
    if not MIN_SUBNET_SIZE <= subnet_size <= MAX_SUBNET_SIZE:
        return f"the subnet size must be a prefix length from {MIN_SUBNET_SIZE} to {MAX_SUBNET_SIZE}"
    for pool in pools:
        if pool.prefixlen > subnet_size:
            return f"pool {pool} cannot hold one /{subnet_size} network"
    return None


def host_routes() -> list[IPv4Network]:
    """The IPv4 routes of this host in every routing table, except default routes.

    ``ip route show table all`` sees policy-routing tables (VPNs put routes there);
    ``/proc/net/route``, the fallback where ``ip`` is missing, shows the main table only.
    """
    routes = _routes_of_all_tables()
    return routes if routes is not None else main_table_routes()


def _routes_of_all_tables() -> list[IPv4Network] | None:
    # A non-root PATH often lacks /usr/sbin, where iproute2 lives.
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None:
        return None
    try:
        done = subprocess.run(
            [ip, "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True, timeout=10
        )
        entries = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(entries, list):
        return None
    routes = []
    for entry in entries:
        destination = str(entry.get("dst", "default"))
        if destination == "default" or entry.get("type") == "multicast":
            continue
        try:
            routes.append(IPv4Network(destination, strict=False))
        except ValueError:
            continue
    return routes


def main_table_routes(path: str = "/proc/net/route") -> list[IPv4Network]:
    """The routes of the main table as ``/proc/net/route`` lists them, except the default route."""
    try:
        with open(path) as table:
            rows = table.read().splitlines()[1:]
    except OSError:
        return []
    routes = []
    for row in rows:
        fields = row.split()
        if len(fields) < 8:
            continue
        destination = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        network = IPv4Network(f"{destination}/{mask}", strict=False)
        if network.prefixlen:
            routes.append(network)
    return routes


def engine_subnets(client: docker.DockerClient) -> list[IPv4Network]:
    """The IPv4 subnets of every network the engine has, whoever made it."""
    return [subnet for subnet in _all_engine_subnets(client) if isinstance(subnet, IPv4Network)]


def _all_engine_subnets(client: docker.DockerClient) -> list[IPv4Network | IPv6Network]:
    subnets = []
    for network in client.api.networks():
        for config in (network.get("IPAM") or {}).get("Config") or []:
            try:
                subnets.append(ipaddress.ip_network(config.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    return subnets


N = TypeVar("N", IPv4Network, IPv6Network)


def free_subnets(pools: Sequence[N], subnet_size: int, taken: Iterable[N]) -> Iterator[N]:
    """Yield the ``/subnet_size`` subnets of ``pools`` that overlap nothing in ``taken``."""
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in taken)
    starts = [start for start, _ in spans]
    # Longest end among spans sorted up to each index: one bisect answers "any overlap?".
    max_ends: list[int] = []
    for _, end in spans:
        max_ends.append(max(end, max_ends[-1]) if max_ends else end)
    for pool in pools:
        for candidate in pool.subnets(new_prefix=subnet_size):
            first, last = int(candidate.network_address), int(candidate.broadcast_address)
            index = bisect.bisect_right(starts, last)
            if index and max_ends[index - 1] >= first:
                continue
            yield candidate


def is_overlap_refusal(exc: docker.errors.APIError) -> bool:
    """Whether the engine refused a network because its subnet overlaps another.

    Docker says "Pool overlaps with other one on this address space"; podman (netavark)
    says "subnet ... is already used on the host or by another config".
    """
    text = str(exc.explanation or exc).lower()
    return "overlap" in text or "already used on the host" in text


@dataclass(frozen=True)
class Holder:
    """Who holds networks of a pool: a run of this plugin (its process and host), or no run."""

    run: str
    """The run's id ("" for a network this plugin did not make)."""
    pid: str
    host: str
    networks: int

    def __str__(self) -> str:
        count = plural(self.networks, "network")
        if not self.run:
            return f"{count} not made by pytest-dockernet"
        return f"run {self.run} (process {self.pid}{' on ' + self.host if self.host else ''}: {count})"


class SubnetAllocator:
    """Hands out subnets and creates networks on them, one process at a time.

    ``create`` receives a free subnet and creates the network on the engine; when the
    engine refuses it as overlapping (a network made past our lock, say from another
    host sharing the engine), the next free subnet is tried.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        lock_file: Path,
        pools: Sequence[IPv4Network] = DEFAULT_POOLS,
        subnet_size: int = DEFAULT_SUBNET_SIZE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        routes: Callable[[], list[IPv4Network]] = host_routes,
        pools6: Sequence[IPv6Network] = DEFAULT_POOLS6,
    ) -> None:
        problem = check_pools_fit(pools, subnet_size)
        if problem:
            raise ValueError(problem)
        self.client = client
        self.pools = tuple(pools)
        self.pools6 = tuple(pools6)
        self.subnet_size = subnet_size
        self.lock_timeout = lock_timeout
        self._lock = filelock.FileLock(str(lock_file), timeout=lock_timeout)
        self._routes = routes
        # The engine's subnets as this process last saw them, kept up to date with what it
        # creates and removes itself. Networks other processes made since are found by the
        # engine's refusal; ones they removed, by a fresh look when the pools seem full.
        self._view: list[IPv4Network | IPv6Network] | None = None
        self._view_lock = threading.Lock()
        self._host_routes: tuple[float, list[IPv4Network]] | None = None

    @property
    def lock_file(self) -> str:
        """Path of the lock file that serializes allocation on this engine."""
        return str(self._lock.lock_file)

    @property
    def capacity(self) -> int:
        """How many networks the pools can hold at once."""
        return sum(2 ** (self.subnet_size - pool.prefixlen) for pool in self.pools)

    def allocate(
        self, create: Callable[[IPv4Network], T], *, holding: Sequence[IPv4Address] = ()
    ) -> tuple[T, IPv4Network]:
        """Choose a free subnet (one that holds every address of ``holding``) and call
        ``create`` with it, under the lock."""
        __tracebackhide__ = hide_frames_of_own_errors
        result, subnet, _ = self._allocate(lambda subnet, _: create(subnet), ipv6=False, holding=holding)
        return result, subnet

    def allocate_dual(
        self, create: Callable[[IPv4Network, IPv6Network], T], *, holding: Sequence[IPv4Address] = ()
    ) -> tuple[T, IPv4Network, IPv6Network]:
        """Choose a free IPv4 subnet and a free IPv6 /64 (from ``pools6``), and call
        ``create`` with both, under the same lock and with the same rules."""
        __tracebackhide__ = hide_frames_of_own_errors
        result, subnet, subnet6 = self._allocate(create, ipv6=True, holding=holding)  # type: ignore[arg-type]
        assert subnet6 is not None
        return result, subnet, subnet6

    def subnet_holding(self, addresses: Sequence[IPv4Address]) -> IPv4Network | None:
        """The one ``/subnet_size`` subnet of the pools that holds all of ``addresses``, if any."""
        if not addresses:
            return None
        for pool in self.pools:
            if addresses[0] in pool:
                subnet = IPv4Network(f"{addresses[0]}/{self.subnet_size}", strict=False)
                return subnet if all(address in subnet for address in addresses) else None
        return None

    def forget(self, *subnets: IPv4Network | IPv6Network | None) -> None:
        """Take subnets of a network this process removed out of its view of the engine."""
        with self._view_lock:
            if self._view is not None:
                self._view = [subnet for subnet in self._view if subnet not in subnets]

    def forget_routes(self) -> None:
        """Drop the cached host routes: the next allocation reads them again (the engine's
        networks it reads afresh anyway whenever its cached view finds the pool full)."""
        self._host_routes = None

    def _taken(self, *, fresh: bool) -> list[IPv4Network | IPv6Network]:
        with self._view_lock:
            if fresh or self._view is None:
                self._view = list(_all_engine_subnets(self.client))
            return list(self._view)

    def _remember(self, *subnets: IPv4Network | IPv6Network | None) -> None:
        with self._view_lock:
            if self._view is not None:
                self._view.extend(subnet for subnet in subnets if subnet is not None)

    def _routes_now(self) -> list[IPv4Network]:
        # Reading every routing table runs ``ip``; routes of the plugin's own bridges are
        # the engine's subnets anyway, so the rest is read again only every few seconds.
        now = time.monotonic()
        if self._host_routes is None or now - self._host_routes[0] > ROUTES_TTL_SECONDS:
            self._host_routes = (now, self._routes())
        return self._host_routes[1]

    def _allocate(
        self,
        create: Callable[[IPv4Network, IPv6Network | None], T],
        *,
        ipv6: bool,
        holding: Sequence[IPv4Address] = (),
    ) -> tuple[T, IPv4Network, IPv6Network | None]:
        __tracebackhide__ = hide_frames_of_own_errors
        wanted = self.subnet_holding(holding) if holding else None
        if holding and wanted is None:
            shown = ", ".join(map(str, holding))
            raise PoolExhaustedError(
                f"no /{self.subnet_size} subnet of the pool {', '.join(map(str, self.pools))} holds"
                f" {shown} (choose addresses in one /{self.subnet_size} of --dockernet-pool)"
            )
        acquire(self._lock, self.lock_timeout, "the subnet lock")
        try:
            try:
                return self._allocate_from(self._taken(fresh=False), create, ipv6=ipv6, wanted=wanted)
            except PoolExhaustedError:
                return self._allocate_from(self._taken(fresh=True), create, ipv6=ipv6, wanted=wanted)
        finally:
            self._lock.release()

    def _allocate_from(
        self,
        on_engine: list[IPv4Network | IPv6Network],
        create: Callable[[IPv4Network, IPv6Network | None], T],
        *,
        ipv6: bool,
        wanted: IPv4Network | None = None,
    ) -> tuple[T, IPv4Network, IPv6Network | None]:
        __tracebackhide__ = hide_frames_of_own_errors
        taken = [n for n in on_engine if isinstance(n, IPv4Network)] + self._routes_now()
        taken6 = [n for n in on_engine if isinstance(n, IPv6Network)]
        free6 = free_subnets(self.pools6, SUBNET6_SIZE, taken6) if ipv6 else None
        for subnet in free_subnets(self.pools, self.subnet_size, taken):
            if wanted is not None and subnet != wanted:
                continue
            subnet6 = next(free6, None) if free6 is not None else None
            if free6 is not None and subnet6 is None:
                raise PoolExhaustedError(
                    f"IPv6 subnet pool {', '.join(map(str, self.pools6))} is exhausted: every"
                    f" /{SUBNET6_SIZE} of it overlaps a network in use (remove leftover networks,"
                    " or widen --dockernet-pool6)"
                )
            try:
                result = retry_interface_race(functools.partial(create, subnet, subnet6))
            except docker.errors.APIError as exc:
                if not is_overlap_refusal(exc):
                    raise
                log.info("engine refused subnet %s / %s as overlapping; trying the next", subnet, subnet6)
                self._remember(subnet)  # another process has it: keep off it from now on
                continue
            self._remember(subnet, subnet6)
            return result, subnet, subnet6
        if wanted is not None:
            raise PoolExhaustedError(
                f"subnet {wanted} of the pool, which holds the static addresses asked for, overlaps"
                " a network or route in use"
            )
        raise PoolExhaustedError(self._exhausted_message(taken))

    def holders(self) -> list[Holder]:
        """Who holds the networks that overlap the pools now, as the engine says, most first."""
        counts: dict[tuple[str, str, str], int] = {}
        for network in self.client.api.networks():
            labels = network.get("Labels") or {}
            for config in (network.get("IPAM") or {}).get("Config") or []:
                try:
                    subnet = ipaddress.ip_network(config.get("Subnet", ""), strict=False)
                except ValueError:
                    continue
                if isinstance(subnet, IPv4Network) and any(subnet.overlaps(pool) for pool in self.pools):
                    key = (labels.get(LABEL_RUN, ""), labels.get(LABEL_PID, ""), labels.get(LABEL_HOST, ""))
                    counts[key] = counts.get(key, 0) + 1
                    break
        found = [Holder(run, pid, host, number) for (run, pid, host), number in counts.items()]
        return sorted(found, key=lambda holder: (-holder.networks, holder.run))

    def _exhausted_message(self, taken: list[IPv4Network]) -> str:
        pools = ", ".join(str(pool) for pool in self.pools)
        in_use = sum(
            1
            for pool in self.pools
            for sub in pool.subnets(new_prefix=self.subnet_size)
            if any(sub.overlaps(t) for t in taken)
        )
        return (
            f"subnet pool {pools} is exhausted: it holds {plural(self.capacity, f'/{self.subnet_size} network')}"
            f" and {in_use} of them overlap networks or routes in use"
            " (remove leftover networks, or widen --dockernet-pool / --dockernet-subnet-size)"
        )
