"""Addresses that follow attachments, static and IPv6 addresses, hermetic DNS, honest port waits."""

from __future__ import annotations

import time
from ipaddress import IPv4Address, IPv6Address

import pytest
import redis
from imagekit import REDIS_COMMAND, redis_image

from pytest_dockernet import InvalidAddressError, partition, wait
from pytest_dockernet.core import wait as core_wait
from pytest_dockernet.engine.subnets import DEFAULT_POOLS6

SLEEP = ["sleep", "300"]
LATE_HTTPD = ["sh", "-c", "sleep 3; exec httpd -f -p 8080 -h /www"]


def connect(cache) -> redis.Redis:
    """A redis-py client to a published redis, through the address the service reports."""
    host, port = cache.address(6379)
    return redis.Redis(host=host, port=port, socket_timeout=5)


def published(service, port: int) -> tuple[str, int]:
    """Where the engine says ``port`` is published now (a fresh inspect)."""
    binding = service.container.client.api.inspect_container(service.id)["NetworkSettings"]["Ports"][
        f"{port}/tcp"
    ][0]
    return "127.0.0.1", int(binding["HostPort"])


# ---- readiness: a published port's proxy is not a listener --------------------------------


@pytest.mark.parametrize("ports", [{8080: None}, None], ids=["published", "unpublished"])
def test_wait_port_returns_only_once_the_container_listens(manager, image, ports):
    with manager.create_network() as net:
        started = time.monotonic()
        net.run(image, LATE_HTTPD, ports=ports, wait=wait.port(8080, timeout=30))
        assert time.monotonic() - started >= 2.5, "returned before the server listened"


def test_through_the_proxy_too_where_container_addresses_cannot_be_reached(manager, image, monkeypatch):
    # Docker Desktop and remote engines: the test process reaches only published ports. That
    # is a path, not a fault: the direct probe is turned off to take it on this engine.
    monkeypatch.setattr(core_wait, "direct_probe_possible", lambda: False)
    with manager.create_network() as net:
        started = time.monotonic()
        web = net.run(image, LATE_HTTPD, ports={8080: None}, wait=wait.port(8080, timeout=30))
        assert time.monotonic() - started >= 2.5, "the proxy's accept was taken for a listener"
        assert core_wait.held_open(*web.address(8080))


# ---- addresses that follow disconnect, partition and heal ---------------------------------


def test_published_ports_follow_disconnect_partition_and_heal(manager, image, docker_client):
    server = redis_image(docker_client)
    with manager.create_network() as net, manager.create_network() as side:
        cache = net.run(server, REDIS_COMMAND, alias="cache", ports={6379: None}, wait=wait.port(6379))
        peer = net.run(image, SLEEP, alias="peer")
        client = connect(cache)
        client.set("k", "before")

        side.connect(cache, aliases=["cache"])
        net.disconnect(cache)  # Docker republishes its ports on new host ports
        assert cache.address(6379) == published(cache, 6379)
        assert cache.ip_on(net) is None
        assert isinstance(cache.ip_on(side), IPv4Address)
        assert connect(cache).get("k") == b"before"

        net.connect(cache)  # heal: its aliases come back
        side.disconnect(cache)
        assert cache.address(6379) == published(cache, 6379)
        assert cache.ip_on(net) == cache.ip
        assert peer.exec(["ping", "-c1", "-W2", "cache"]).ok

        islands = []

        def make_island():
            islands.append(manager.create_network())
            return islands[-1]

        with partition(net, [[cache], [peer]], make_island) as (island, _):
            assert cache.address(6379) == published(cache, 6379)
            connect(cache).set("k", "during")
            assert cache.ip_on(net) is None
            assert cache.ip_on(island) is not None
        assert cache.address(6379) == published(cache, 6379)
        assert connect(cache).get("k") == b"during"
        for made in islands:
            assert manager.release(made) == []


def test_ip_on_says_where_a_service_is_attached(manager, image):
    with manager.create_network() as home, manager.create_network() as other:
        box = home.run(image, SLEEP, alias="box")
        assert box.ip_on(home) == box.ip
        assert box.ip_on(other) is None
        address = other.connect(box, aliases=["guest"])
        assert box.ip_on(other) == address
        assert address in other.subnet


# ---- static and IPv6 addresses ------------------------------------------------------------


def test_a_static_address_is_taken_and_resolved_by_alias(manager, image):
    with manager.create_network() as net:
        chosen = net.subnet.network_address + 7
        fixed = net.run(image, SLEEP, alias="fixed", ip=str(chosen))
        assert fixed.ip == chosen
        probe = net.run(image, SLEEP)
        assert str(chosen) in probe.exec(["nslookup", "fixed"]).output


def test_static_addresses_that_cannot_be_had_are_named(manager, image, docker_client):
    with manager.create_network() as net:
        subnet = net.subnet
        with pytest.raises(InvalidAddressError, match=rf"address 10\.1\.2\.3 is outside the subnet {subnet}"):
            net.run(image, SLEEP, ip="10.1.2.3")
        with pytest.raises(
            InvalidAddressError, match=rf"address {net.gateway} is the gateway of subnet {subnet}"
        ):
            net.run(image, SLEEP, ip=str(net.gateway))
        with pytest.raises(InvalidAddressError, match="is not an IPv4 address"):
            net.run(image, SLEEP, ip="not-an-address")
        taken = str(subnet.network_address + 9)
        net.run(image, SLEEP, ip=taken)
        with pytest.raises(
            InvalidAddressError, match=rf"address {taken} of subnet {subnet} is already taken"
        ):
            net.run(image, SLEEP, ip=taken)
        assert len(net.services) == 1, "the refused container is gone"


def test_ipv6_networks_are_dual_stack_with_subnets_from_the_ipv6_pool(manager, image):
    with manager.create_network(ipv6=True) as net, manager.create_network(ipv6=True) as other:
        assert net.subnet6 is not None
        assert net.subnet6.prefixlen == 64
        assert net.subnet6.subnet_of(DEFAULT_POOLS6[0])
        assert other.subnet6 is not None
        assert not net.subnet6.overlaps(other.subnet6)
        a = net.run(image, SLEEP, alias="a")
        b = net.run(image, SLEEP, alias="b")
        assert isinstance(a.ip6, IPv6Address)
        assert a.ip6 in net.subnet6
        assert a.ip6_on(net) == a.ip6
        answer = b.exec(["nslookup", "a"]).output
        assert str(a.ip) in answer
        assert str(a.ip6) in answer, "the alias resolves to both families"
        assert b.exec(["ping6", "-c1", "-W2", "a"]).ok


def test_a_plain_network_has_no_ipv6(manager, image):
    with manager.create_network() as net:
        assert net.subnet6 is None
        assert net.run(image, SLEEP).ip6 is None


# ---- hermetic DNS -------------------------------------------------------------------------


@pytest.mark.docker_only("hermetic networks are refused on podman (test_podman.py)")
def test_a_hermetic_network_forwards_no_name_and_keeps_its_aliases(manager, image):
    with manager.create_network(hermetic=True) as net:
        net.run(image, SLEEP, alias="known")
        probe = net.run(image, SLEEP)
        config = probe.reload()["HostConfig"]
        # The forwarding configuration: loopback as the only upstream, so no query leaves.
        assert config["Dns"] == ["127.0.0.1"]
        assert config["DnsOptions"] == ["timeout:1", "attempts:1"]
        assert probe.exec(["nslookup", "known"]).ok
        started = time.monotonic()
        lookup = probe.exec(["ping", "-c1", "-W1", "no-such-name.invalid"])
        assert "bad address" in lookup.output
        assert time.monotonic() - started < 3, "one attempt of one second"
        own = net.run(image, SLEEP, dns=["127.0.0.1"], dns_opt=["attempts:2"])
        assert own.reload()["HostConfig"]["DnsOptions"] == ["attempts:2"], "a test's own dns settings win"
