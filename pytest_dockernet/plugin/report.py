"""What a failed test's report shows about the networks and services it used."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

import docker.errors
import requests

from ..core.network import Network


def describe_network(network: Network) -> str:
    """One line for the network, then one per service: image, aliases, address, state."""
    lines = [f"network {network.name} ({network.id[:12]}) subnet {network.subnet} gateway {network.gateway}"]
    if network.subnet6 is not None:
        lines[0] += f" subnet6 {network.subnet6}"
    for service in network.services:
        try:
            state = service.reload().get("State", {})
            status = str(state.get("Status", "?"))
            if state.get("Status") == "exited":
                status += f" (exit code {state.get('ExitCode')})"
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            status = f"unknown ({exc})"
        aliases = ",".join(service.aliases) or "-"
        ip = service.ip if service.ip.packed != bytes(4) else "-"
        lines.append(f"  {service.name}  image={service.image}  aliases={aliases}  ip={ip}  state={status}")
    if not network.services:
        lines.append("  (no services)")
    for fault in network.faults:
        lines.append(f"  fault active: {fault}")
    for guest, aliases_here in network.guests:
        lines.append(
            f"  guest {guest.name} (of network {guest.network.name})  aliases here={','.join(aliases_here) or '-'}"
            f"  ip here={guest.ip_on(network) or '-'}"
        )
    return "\n".join(lines)


def report_sections(
    networks: Iterable[Network], log_lines: int, logs_shown: Collection[str] = ()
) -> Iterator[tuple[str, str]]:
    """``(title, content)`` sections for a failed test's report, as pytest shows captured output.

    The logs of services named in ``logs_shown`` (already in the error's message) are left out.
    """
    for network in networks:
        yield f"network {network.name}", describe_network(network)
        if log_lines <= 0:
            continue
        for service in network.services:
            if service.name in logs_shown:
                continue
            try:
                logs = service.logs(tail=log_lines).rstrip() or "(no output)"
            except Exception as exc:  # noqa: BLE001 - a report must never fail the report
                logs = f"(logs unavailable: {exc})"
            yield f"logs of {service.name} (last {log_lines} lines)", logs
