"""Addresses: where a container is on a network, static addresses, and ports on loopback."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from typing import Any

from ..errors import InvalidAddressError

LOOPBACK = "127.0.0.1"


def endpoint_on(attrs: dict[str, Any], network_id: str, name: str | None = None) -> dict[str, Any] | None:
    """A container's endpoint on network ``network_id`` (named ``name``), from its inspect data.

    Docker keys endpoints by network name and gives the ID as ``NetworkID``; podman's Docker
    API (4.3) gives the name there too, so the name is the fallback.
    """
    endpoints = attrs.get("NetworkSettings", {}).get("Networks") or {}
    for endpoint in endpoints.values():
        if endpoint.get("NetworkID") == network_id:
            return dict(endpoint)
    if name is not None and name in endpoints:
        return dict(endpoints[name])
    return None


def address_on(attrs: dict[str, Any], network_id: str, name: str | None = None) -> IPv4Address | None:
    """A container's IPv4 address on network ``network_id`` (named ``name``), from its inspect data."""
    endpoint = endpoint_on(attrs, network_id, name) or {}
    return IPv4Address(endpoint["IPAddress"]) if endpoint.get("IPAddress") else None


def address6_on(attrs: dict[str, Any], network_id: str, name: str | None = None) -> IPv6Address | None:
    """A container's global IPv6 address on network ``network_id``, from its inspect data."""
    endpoint = endpoint_on(attrs, network_id, name) or {}
    return IPv6Address(endpoint["GlobalIPv6Address"]) if endpoint.get("GlobalIPv6Address") else None


def check_static_address(ip: object, subnet: IPv4Network, network_name: str) -> str:
    """``ip`` as text if a container may take it on ``subnet``; else :class:`InvalidAddressError`.

    Valid: an IPv4 host address of the subnet other than its gateway (the first one).
    """
    hosts = subnet.hosts()
    gateway = next(hosts)
    valid = f"choose a host address of {subnet} from {gateway + 1} to {subnet.broadcast_address - 1}"
    try:
        address = ip_address(str(ip))
    except ValueError:
        raise InvalidAddressError(
            f"ip={ip!r} is not an IPv4 address; {valid} (network {network_name})"
        ) from None
    if not isinstance(address, IPv4Address) or address not in subnet:
        raise InvalidAddressError(
            f"address {address} is outside the subnet {subnet} of network {network_name}; {valid}"
        )
    if address == gateway:
        raise InvalidAddressError(
            f"address {address} is the gateway of subnet {subnet} (network {network_name}); {valid}"
        )
    if address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidAddressError(
            f"address {address} is the network or broadcast address of subnet {subnet}"
            f" (network {network_name}); {valid}"
        )
    return str(address)


def on_loopback(binding: Any) -> Any:
    """A ``ports`` value of docker-py's ``containers.run``, published on loopback only.

    Every form docker-py takes is handled (None, a port, ``(ip, port)``, ``(ip,)``,
    ``(port,)``, ``{"HostIp": ..., "HostPort": ...}`` and lists of them); a binding that
    names a host address keeps it, so ``("0.0.0.0", 8080)`` still publishes on every interface.
    """
    if isinstance(binding, list):
        return [on_loopback(item) for item in binding]
    if isinstance(binding, tuple):
        if len(binding) == 2:
            return binding if binding[0] else (LOOPBACK, binding[1])
        if len(binding) == 1 and isinstance(binding[0], str) and binding[0]:
            return binding
        return (LOOPBACK, binding[0] if binding else None)
    if isinstance(binding, dict):
        return binding if binding.get("HostIp") else {**binding, "HostIp": LOOPBACK}
    return (LOOPBACK, binding)
