"""Network partitions: groups of services that cannot reach each other, and healing."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ..errors import ArgumentError, hide_frames_of_own_errors
from .network import Network
from .service import Service


@contextmanager
def partition(
    network: Network,
    groups: Sequence[Sequence[Service]],
    make_network: Callable[[], Network] | None = None,
) -> Iterator[list[Network]]:
    """Split services of ``network`` into ``groups`` for the ``with`` block, then heal.

    Members of one group reach each other by name, and nothing else; services in no group
    stay as they are among themselves. Two ways:

    - without ``make_network`` (the default), every service **keeps its addresses**: packet
      filters in the members' own network namespaces drop what crosses groups, on every
      packet; open TCP connections across groups hang and go on after the heal (see
      :meth:`Network.isolate`). The ``with`` gives an empty list.
    - with ``make_network`` (such as the ``docker_network_factory`` fixture), each group gets
      a network of its own where its members keep their aliases, and they leave ``network``:
      they get new addresses there, and open connections break. On exit each rejoins
      ``network`` with its aliases, and a service started with a static ``ip=`` gets it back.
    """
    __tracebackhide__ = hide_frames_of_own_errors
    if make_network is None:
        with network.isolate(groups):
            yield []
        return
    members = [service for group in groups for service in group]
    if len(set(map(id, members))) != len(members):
        raise ArgumentError("a service can be in one group only")
    islands: list[Network] = []
    for group in groups:
        island = make_network()
        islands.append(island)
        for service in group:
            island.connect(service, aliases=service.aliases)
    for service in members:
        network.disconnect(service)
    try:
        yield islands
    finally:
        for island, group in zip(islands, groups, strict=True):
            for service in group:
                network.connect(service, aliases=service.aliases, ip=service.static_ip)
                island.disconnect(service)
