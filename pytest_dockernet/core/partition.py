"""Network partitions: groups of services that cannot reach each other, and healing."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from .network import Network
from .service import Service


@contextmanager
def partition(
    network: Network, groups: Sequence[Sequence[Service]], make_network: Callable[[], Network]
) -> Iterator[list[Network]]:
    """Split services of ``network`` into ``groups`` for the ``with`` block, then heal.

    Each group gets a network of its own (from ``make_network``, such as the
    ``docker_network_factory`` fixture) where its members keep their aliases; then every
    grouped service leaves ``network``. Members of one group reach each other by name,
    and nothing else; services in no group stay on ``network``. On exit every grouped
    service rejoins ``network`` with its aliases and leaves its group network.
    """
    members = [service for group in groups for service in group]
    if len(set(map(id, members))) != len(members):
        raise ValueError("a service can be in one group only")
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
                network.connect(service, aliases=service.aliases)
                island.disconnect(service)
