"""Network faults between services that keep their addresses: cuts, loss, rate caps, delay, resets.

A fault is packet-filter rules (``iptables``) and queueing disciplines (``tc``) inside a
service's own network namespace, put there by a short-lived helper container that joins
it (``network_mode=container:<id>``, ``NET_ADMIN``) and is removed when its command ends.
Nothing is done on the engine's host, so it works wherever the engine runs; the rules die
with the namespace, so a run that crashes leaves no fault behind. A service keeps its
addresses and names: open TCP connections hang across a cut and resume after the heal.

Every rule carries a comment naming its fault, so a heal removes exactly what it put.
The plugin heals every fault still active when a test ends, whatever happened in it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

import docker.errors
import requests

from ..engine import cleanup
from ..engine.images import pull_image
from ..errors import ArgumentError, FaultError, hide_frames_of_own_errors
from .service import Service
from .together import first_error, run_together

if TYPE_CHECKING:
    from .network import Network

FAULT_IMAGE_ENV = "PYTEST_DOCKERNET_FAULT_IMAGE"
# An image with iptables (nft) and iproute2's tc, for engines with a registry.
DEFAULT_FAULT_IMAGE = "nicolaka/netshoot:v0.13"
HELPER_SECONDS = 30.0
# iptables is a multi-call binary in some images: it is called by this name in each helper.
IPT = "iptables -w 5"
TC = "$(command -v /usr/sbin/tc || command -v /sbin/tc || command -v tc)"
NO_NETEM = "Specified qdisc kind is unknown"
# Each helper first finds iptables (the nft one first) and calls it "iptables": a multi-call
# binary (xtables-nft-multi) picks its tool by the name it is called by.
PRELUDE = """set -e
for name in xtables-nft-multi iptables-nft iptables; do
  for dir in /usr/sbin /sbin /usr/bin /bin; do
    if [ -x "$dir/$name" ] && [ ! -e /tmp/iptables ]; then ln -s "$dir/$name" /tmp/iptables; fi
  done
done
export PATH=/tmp:$PATH:/usr/sbin:/sbin"""

_numbers = itertools.count(1)
_active_lock = threading.Lock()
_active: list[Fault] = []


def fault_image() -> str:
    """The helper image: ``$PYTEST_DOCKERNET_FAULT_IMAGE``, else :data:`DEFAULT_FAULT_IMAGE`."""
    return os.environ.get(FAULT_IMAGE_ENV) or DEFAULT_FAULT_IMAGE


def active_faults() -> list[Fault]:
    """The faults of this process not healed yet, oldest first."""
    with _active_lock:
        return list(_active)


def heal_all() -> list[str]:
    """Heal every active fault of this process, newest first; return what could not be healed."""
    problems = []
    for fault in reversed(active_faults()):
        try:
            fault.heal()
        except FaultError as exc:
            problems.append(str(exc))
    return problems


@dataclass
class Step:
    """One helper run in one service's namespace: what puts the fault there, what takes it away."""

    service: Service
    apply: str
    heal: str


@dataclass
class Fault:
    """An active fault. :meth:`heal` takes it away; as a context manager it heals on exit."""

    description: str
    network: Network
    steps: list[Step] = field(default_factory=list)
    healed: bool = False

    def heal(self) -> None:
        """Take the fault away (once; healing twice does nothing)."""
        __tracebackhide__ = hide_frames_of_own_errors
        with _active_lock:
            if self.healed:
                return
            self.healed = True
            if self in _active:
                _active.remove(self)
        scripts = [(step.service, step.heal) for step in reversed(self.steps)]
        problems = run_steps(self.network, scripts, gone_is_fine=True)
        if problems:
            raise FaultError(f"healing {self.description}: {'; '.join(map(str, problems))}")

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.heal()

    def __str__(self) -> str:
        return self.description


def apply(network: Network, description: str, steps: list[Step]) -> Fault:
    """Run each step's ``apply`` in its service's namespace; on a failure, undo the ones done."""
    __tracebackhide__ = hide_frames_of_own_errors
    fault = Fault(description, network)
    fault.steps.extend(steps)  # before they run: a step that fails halfway is taken back too
    try:
        problems = run_steps(network, [(step.service, step.apply) for step in steps])
    except BaseException:
        _take_back(fault)
        raise
    if problems:
        _take_back(fault)
        raise problems[0]
    with _active_lock:
        _active.append(fault)
    return fault


def _take_back(fault: Fault) -> None:
    with _active_lock:
        _active.append(fault)
    with contextlib.suppress(FaultError):  # the first error says what went wrong
        fault.heal()


def run_steps(
    network: Network, scripts: list[tuple[Service, str]], *, gone_is_fine: bool = False
) -> list[FaultError]:
    """Run each script in its service's namespace: one service's in order, different services'
    side by side (a helper's start is most of a step's time). Returns the errors, in order."""
    __tracebackhide__ = hide_frames_of_own_errors
    by_service: dict[str, list[tuple[Service, str]]] = {}
    for service, script in scripts:
        by_service.setdefault(service.id, []).append((service, script))

    def run_group(group: list[tuple[Service, str]], cancel: threading.Event) -> list[FaultError]:
        errors = []
        for service, script in group:
            if cancel.is_set():
                break
            try:
                run_in_namespace(network, service, script, gone_is_fine=gone_is_fine)
            except FaultError as exc:
                errors.append(exc)
        return errors

    groups = list(by_service.values())
    if len(groups) == 1:
        return run_group(groups[0], threading.Event())
    futures = run_together([partial(run_group, group) for group in groups], name="dockernet-fault")
    error = first_error(futures)
    if error is not None:
        raise error
    return [problem for future in futures for problem in future.result()]


def run_in_namespace(network: Network, service: Service, script: str, *, gone_is_fine: bool = False) -> str:
    """Run ``script`` (sh) in a helper container that shares ``service``'s network namespace."""
    __tracebackhide__ = hide_frames_of_own_errors
    client = network.client
    name = network.containers.claim_name("fault")
    command = ["sh", "-c", f"{PRELUDE}\n{script}"]
    host_config = client.api.create_host_config(network_mode=f"container:{service.id}", cap_add=["NET_ADMIN"])
    labels = network.identity.labels(network.test)
    image = fault_image()
    container_id = ""
    try:
        try:
            container_id = _create(client, image, command, name, labels, host_config)
        except docker.errors.ImageNotFound:
            pull_image(client, image)
            container_id = _create(client, image, command, name, labels, host_config)
        try:
            client.api.start(container_id)
        except docker.errors.APIError as exc:
            if gone_is_fine and ("No such container" in str(exc) or "not running" in str(exc)):
                return ""  # the service is gone, and its namespace with every rule in it
            raise
        status = client.api.wait(container_id, timeout=HELPER_SECONDS)  # type: ignore[arg-type]
        output = bytes(client.api.logs(container_id, stdout=True, stderr=True)).decode("utf-8", "replace")
    except (docker.errors.APIError, requests.RequestException) as exc:
        reason = getattr(exc, "explanation", None) or exc
        raise FaultError(f"the helper for {service.name} (image {image!r}) failed: {reason}") from None
    finally:
        if container_id:
            failure = cleanup.remove_container(client, container_id, name)
            if failure is not None:
                cleanup.warn_failures([failure])
    if int(status.get("StatusCode", -1)) != 0:
        if NO_NETEM in output:
            raise FaultError(
                f"the engine's kernel has no sch_netem (tc: '{NO_NETEM}'), which delay and jitter need;"
                " cut, loss, rate and reset work without it"
            )
        raise FaultError(
            f"the helper for {service.name} (image {image!r}) failed: {output.strip() or status}"
        )
    return output


def _create(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    name: str,
    labels: dict[str, str],
    host_config: object,
) -> str:
    response = client.api.create_container(image, command, name=name, labels=labels, host_config=host_config)
    return str(response["Id"])


# ---- what each fault puts in a namespace ---------------------------------------------------


def arriving(tag: str, source: str, match: str, target: str) -> tuple[str, str]:
    """``iptables`` commands that put (and take away) a rule on what arrives from ``source``.

    Faults act where packets arrive (``INPUT``): a packet dropped on its way out would fail
    the sender's own call at once ("Operation not permitted"), where a real cut is silent.
    """
    rule = f"INPUT -s {source} {match} -m comment --comment {tag} -j {target}".replace("  ", " ")
    return f"{IPT} -I {rule}", f"{IPT} -D {rule} 2>/dev/null || true"


def shaping(tag: int, own: IPv4Address, peer: str, rate: str | None, delay: str | None) -> tuple[str, str]:
    """``tc`` commands for a class of traffic to ``peer`` on the interface that holds ``own``."""
    find = f"IF=$(ip -o -4 addr show | grep ' {own}/' | awk '{{print $2}}' | head -n 1)\ntest -n \"$IF\""
    put = [
        find,
        f"{TC} qdisc show dev $IF | grep -q 'htb 1:' || {TC} qdisc add dev $IF root handle 1: htb",
        f"{TC} class add dev $IF parent 1: classid 1:{tag} htb rate {rate or '10gbit'}",
        f"{TC} filter add dev $IF parent 1: protocol ip prio {tag} u32 match ip dst {peer} flowid 1:{tag}",
    ]
    if delay:
        put.append(f"{TC} qdisc add dev $IF parent 1:{tag} handle {tag}: netem delay {delay} 2>&1")
    take = [
        find,
        f"{TC} filter del dev $IF parent 1: prio {tag} 2>/dev/null || true",
        f"{TC} class del dev $IF classid 1:{tag} 2>/dev/null || true",
    ]
    return "\n".join(put), "\n".join(take)


Peer = Service | IPv4Address
"""The other end of a link: a service, or an address (the gateway, where the test process is)."""


def _peer(network: Network, other: Peer | None) -> str:
    if other is None:
        return str(network.subnet)
    if isinstance(other, IPv4Address):
        return f"{other}/32"
    address = other.ip_on(network)
    if address is None:
        raise FaultError(f"service {other.name} has no address on network {network.name}")
    return f"{address}/32"


def _own(network: Network, service: Service) -> IPv4Address:
    address = service.ip_on(network)
    if address is None:
        raise FaultError(f"service {service.name} has no address on network {network.name}")
    return address


def cut_steps(network: Network, a: Service, b: Peer, one_way: bool) -> tuple[str, list[Step]]:
    """The steps of :meth:`Network.cut`, and the fault's description."""
    __tracebackhide__ = hide_frames_of_own_errors
    tag = f"dockernet-fault-{next(_numbers)}"
    arrow = "->" if one_way else "<->"
    description = f"cut {_label(a)} {arrow} {_label(b)}"
    if not isinstance(b, Service):
        if one_way:
            raise ArgumentError(
                f"a one-way cut toward {b} needs a service at that end, where its packets arrive;"
                f" cut({_label(a)!r}, {str(b)!r}) without one_way cuts both ways"
            )
        return description, [Step(a, *arriving(tag, _peer(network, b), "", "DROP"))]
    steps = [Step(b, *arriving(tag, _peer(network, a), "", "DROP"))]  # a -> b
    if not one_way:
        steps.append(Step(a, *arriving(tag, _peer(network, b), "", "DROP")))  # b -> a
    return description, steps


def parse_rate(rate: str | int | float) -> str:
    """A rate as tc takes it: a number is bits per second; ``"1mbit"``, ``"500kbit"`` as they are."""
    __tracebackhide__ = hide_frames_of_own_errors
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        if rate <= 0:
            raise ArgumentError(f"rate must be more than 0 bits per second, not {rate!r}")
        return f"{int(rate)}bit"
    text = str(rate).strip().lower()
    number = text.rstrip("kmgbitps")
    try:
        if float(number) <= 0:
            raise ValueError
    except ValueError:
        raise ArgumentError(
            f"rate takes bits per second (1_000_000) or a tc rate ('1mbit', '500kbit'), not {rate!r}"
        ) from None
    return text


def seconds_text(what: str, value: float) -> str:
    __tracebackhide__ = hide_frames_of_own_errors
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ArgumentError(f"{what} takes seconds, 0 or more, not {value!r}")
    return f"{value * 1000:g}ms"


def impair_steps(
    network: Network,
    a: Service,
    b: Peer | None,
    *,
    loss: float | None,
    rate: str | int | float | None,
    delay: float | None,
    jitter: float | None,
    reset: bool,
) -> tuple[str, list[Step]]:
    """The steps of :meth:`Network.impair`, and the fault's description."""
    __tracebackhide__ = hide_frames_of_own_errors
    if loss is not None and (isinstance(loss, bool) or not 0 < loss <= 1):
        raise ArgumentError(
            f"loss is a fraction of packets above 0 and at most 1 (0.3 for 30 %), not {loss!r}"
        )
    if jitter is not None and delay is None:
        raise ArgumentError("jitter varies a delay: give delay= too")
    if loss is None and rate is None and delay is None and not reset:
        raise ArgumentError("impair() needs at least one of loss=, rate=, delay= or reset=True")
    number = next(_numbers) % 60000 + 10  # a tc class id and filter priority too
    tag = f"dockernet-fault-{number}"
    peer = _peer(network, b)
    # What arrives at a from b, and at b from a when b is a service.
    into: list[tuple[Service, str]] = [(a, peer)]
    if isinstance(b, Service):
        into.append((b, _peer(network, a)))
    puts: dict[int, list[str]] = {id(service): [] for service, _ in into}
    takes: dict[int, list[str]] = {id(service): [] for service, _ in into}
    what = []
    for match, target, said in (
        (f"-m statistic --mode random --probability {loss:g}" if loss is not None else None, "DROP",
         f"loss {loss:g}" if loss is not None else ""),
        ("-p tcp" if reset else None, "REJECT --reject-with tcp-reset", "TCP resets"),
    ):  # fmt: skip
        if match is None:
            continue
        what.append(said)
        for service, source in into:
            put, take = arriving(tag, source, match, target)
            puts[id(service)].append(put)
            takes[id(service)].append(take)
    tc_rate = parse_rate(rate) if rate is not None else None
    tc_delay = None
    if delay is not None:
        tc_delay = seconds_text("delay", delay) + (f" {seconds_text('jitter', jitter)}" if jitter else "")
    if tc_rate is not None or tc_delay is not None:  # on what leaves a (and b), toward the other
        what += [f"rate {tc_rate}"] if tc_rate else []
        what += [f"delay {tc_delay}"] if tc_delay else []
        for service, _ in into:
            other = _peer(network, a) if service is not a else peer
            put, take = shaping(number, _own(network, service), other, tc_rate, tc_delay)
            puts[id(service)].append(put)
            takes[id(service)].insert(0, take)
    steps = [
        Step(service, "\n".join(puts[id(service)]), "\n".join(takes[id(service)])) for service, _ in into
    ]
    between = f"{_label(a)} <-> {_label(b)}" if b is not None else f"{_label(a)} on {network.name}"
    return f"{', '.join(what)} {between}", steps


def partition_steps(network: Network, groups: Sequence[Sequence[Service]]) -> tuple[str, list[Step]]:
    """Filtering rules that keep each group's members to each other on ``network``.

    The gateway stays reachable: it is the host, whence published ports and the test
    process reach services, and on podman the network's DNS server (aardvark-dns)."""
    number = next(_numbers)
    tag = f"dockernet-fault-{number}"
    steps = []
    subnet = network.subnet
    for group in groups:
        friends = [_peer(network, member) for member in group] + [network.gateway]
        for member in group:
            put = [f"{IPT} -I INPUT -s {subnet} -m comment --comment {tag} -j DROP"]
            put += [f"{IPT} -I INPUT -s {friend} -m comment --comment {tag} -j ACCEPT" for friend in friends]
            take = [line.replace(" -I ", " -D ", 1) + " 2>/dev/null || true" for line in put]
            steps.append(Step(member, "\n".join(put), "\n".join(take)))
    shown = " | ".join(",".join(_label(member) for member in group) for group in groups)
    return f"partition {shown} on {network.name}", steps


def _label(peer: Peer | None) -> str:
    if peer is None:
        return "-"
    if isinstance(peer, IPv4Address):
        return str(peer)
    return peer.aliases[0] if peer.aliases else peer.name


class NetworkFaults:
    """The doors of a :class:`~pytest_dockernet.Network` to faults between its services.

    Services are named by object, alias or container name. Each call returns the active
    :class:`Fault`: use it as a context manager, call :meth:`Fault.heal`, or leave it to the
    test's end, when the plugin heals every fault still active.
    """

    def cut(self: Network, a: Service | str, b: Service | str, *, one_way: bool = False) -> Fault:  # type: ignore[misc]
        """Drop every packet between ``a`` and ``b`` (only ``a`` -> ``b`` with ``one_way``).

        ``b`` may be an address rather than a service: ``str(network.gateway)`` is where the
        test process reaches a service from.

        Both keep their addresses and names; other peers are unaffected; open TCP
        connections hang (nothing is refused) and go on after the heal.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        description, steps = cut_steps(self, self.service(a), self.peer(b), one_way)
        return apply(self, description, steps)

    def impair(  # type: ignore[misc]
        self: Network,
        a: Service | str,
        b: Service | str | None = None,
        *,
        loss: float | None = None,
        rate: str | int | float | None = None,
        delay: float | None = None,
        jitter: float | None = None,
        reset: bool = False,
    ) -> Fault:
        """Impair the link ``a`` <-> ``b`` (or all of ``a``'s traffic on this network).

        ``loss``: the fraction of packets lost, each way (0.3); ``rate``: a bandwidth cap, each
        way (bits per second, or a tc rate such as ``"1mbit"``); ``delay`` and ``jitter``
        (seconds): added latency, which needs the kernel's ``sch_netem``; ``reset``: TCP
        connections are reset (the client sees a reset, not a time-out). With ``b`` an
        address (the gateway), loss and resets act on what arrives at ``a`` from it.
        """
        __tracebackhide__ = hide_frames_of_own_errors
        other = None if b is None else self.peer(b)
        description, steps = impair_steps(
            self, self.service(a), other, loss=loss, rate=rate, delay=delay, jitter=jitter, reset=reset
        )
        return apply(self, description, steps)

    def isolate(self: Network, groups: Sequence[Sequence[Service | str]]) -> Fault:  # type: ignore[misc]
        """Keep each group's members to each other on this network: a partition in which
        everyone keeps their addresses (see :func:`~pytest_dockernet.partition`)."""
        __tracebackhide__ = hide_frames_of_own_errors
        members = [[self.service(member) for member in group] for group in groups]
        flat = [member for group in members for member in group]
        if len(set(map(id, flat))) != len(flat):
            raise ArgumentError("a service can be in one group only")
        description, steps = partition_steps(self, members)
        return apply(self, description, steps)

    @property
    def faults(self: Network) -> list[Fault]:  # type: ignore[misc]
        """The faults active on this network, oldest first."""
        return [fault for fault in active_faults() if fault.network is self]

    def peer(self: Network, which: Service | str) -> Peer:  # type: ignore[misc]
        """A service by object, alias or name, or an IPv4 address given as a string."""
        __tracebackhide__ = hide_frames_of_own_errors
        if isinstance(which, str):
            with contextlib.suppress(ValueError):
                return IPv4Address(which)
        return self.service(which)

    def service(self: Network, which: Service | str) -> Service:  # type: ignore[misc]
        """A service of this network, or a guest of it, by object, alias or container name."""
        __tracebackhide__ = hide_frames_of_own_errors
        if isinstance(which, Service):
            return which
        known = self.services + [guest for guest, _ in self.guests]
        for service in known:
            if which in service.aliases or which == service.name:
                return service
        names = ", ".join(sorted({alias for service in known for alias in service.aliases})) or "none"
        raise ArgumentError(f"no service {which!r} on network {self.name} (its aliases: {names})")
