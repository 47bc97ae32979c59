"""What podman, serving the Docker API, needs done its own way (README.rst, Podman).

Podman runs HEALTHCHECKs with systemd timers only: where no systemd runs, the plugin runs
them through podman's own API (``/libpod/...``) on the same socket. Its network creation can
fail for a moment while another network's bridge goes (:func:`is_interface_race`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

import docker
import docker.errors
import requests

LIBPOD = "/v4.0.0/libpod"
# How often a network creation that lost the race with a vanishing interface is tried, and
# the pause between tries (is_interface_race).
INTERFACE_RACE_TRIES = 10
INTERFACE_RACE_PAUSE = 0.05

T = TypeVar("T")
log = logging.getLogger("pytest_dockernet")

_podman: weakref.WeakKeyDictionary[docker.DockerClient, bool] = weakref.WeakKeyDictionary()


def is_podman(client: docker.DockerClient) -> bool:
    """Whether the engine is podman serving the Docker API (asked once per client)."""
    if client not in _podman:
        try:
            components = client.version().get("Components") or []
        except (docker.errors.APIError, requests.RequestException):
            return False
        _podman[client] = any("podman" in str(c.get("Name", "")).lower() for c in components)
    return _podman[client]


def is_interface_race(exc: docker.errors.APIError) -> bool:
    """Whether podman failed to create a network because a host interface vanished meanwhile.

    Before creating a bridge network, podman reads the host's addresses to refuse a subnet in
    use (Go's ``net.InterfaceAddrs``: the addresses, then the interfaces). An interface removed
    in between, such as the bridge of a network whose last container just stopped, fails the
    call with "route ip+net: no such network interface": nothing was created, and the same
    request succeeds when tried again.
    """
    return "no such network interface" in str(exc.explanation or exc).lower()


def retry_interface_race(create: Callable[[], T]) -> T:
    """Call ``create`` (a network creation), again while it fails as :func:`is_interface_race`
    says, up to ``INTERFACE_RACE_TRIES`` times; the last failure is raised."""
    for _ in range(INTERFACE_RACE_TRIES - 1):
        try:
            return create()
        except docker.errors.APIError as exc:
            if not is_interface_race(exc):
                raise
            log.info("engine lost a host interface while creating a network; trying again")
            time.sleep(INTERFACE_RACE_PAUSE)
    return create()


def run_healthcheck(client: docker.DockerClient, container_id: str, timeout: float) -> None:
    """Run a container's HEALTHCHECK once through podman's own API, which records the result.

    Podman schedules healthchecks with systemd timers: where it runs without systemd (CI
    containers, this project's test machines), nothing runs them and a container stays
    ``starting`` for good."""
    url = client.api.base_url + f"{LIBPOD}/containers/{container_id}/healthcheck"
    with contextlib.suppress(requests.RequestException):
        client.api.get(url, timeout=timeout).close()
