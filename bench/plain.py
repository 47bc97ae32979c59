"""What the benchmarks' plain docker-py side shares: a network of its own, safe next to any run.

Names carry a random token and the subnet is one that no network on the engine uses (the
engine refuses overlaps, so a race with another run moves on to the next), so a benchmark
can run while other pytest-dockernet runs share the engine.
"""

from __future__ import annotations

from ipaddress import IPv4Network

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from pytest_dockernet import new_run_id
from pytest_dockernet.engine.subnets import engine_subnets, free_subnets, host_routes, is_overlap_refusal

# Clear of the plugin's default pool (10.199.0.0/16), so neither starves the other.
BENCH_POOL = IPv4Network("10.196.0.0/16")
TOKEN = new_run_id()


def unique(name: str) -> str:
    """``name`` made unique to this benchmark process."""
    return f"bench-{TOKEN}-{name}"


def plain_network(client: docker.DockerClient, name: str) -> str:
    """Create a bridge network with an explicit free /26 subnet, as a careful user does; return its ID."""
    taken = engine_subnets(client) + host_routes()
    for subnet in free_subnets([BENCH_POOL], 26, taken):
        ipam = IPAMConfig(
            driver="default", pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(next(subnet.hosts())))]
        )
        try:
            return str(client.api.create_network(unique(name), driver="bridge", ipam=ipam)["Id"])
        except docker.errors.APIError as exc:
            if not is_overlap_refusal(exc):
                raise
    raise SystemExit(f"no free /26 left in {BENCH_POOL}")
