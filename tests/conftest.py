"""Shared fixtures of the test suite, and the leak check that ends every run."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from podman_engine import ENGINE_KIND_ENV
from second_engine import Engine, running_engine

from pytest_dockernet import NetworkManager, RunIdentity, new_run_id
from pytest_dockernet.engine.images import import_busybox
from pytest_dockernet.engine.naming import HOST_ENV, LABEL_HOST, LABEL_RUN
from pytest_dockernet.engine.podman import retry_interface_race
from pytest_dockernet.engine.statedir import STATE_DIR_ENV
from pytest_dockernet.plugin.state import state_key
from pytest_dockernet.runs.lease import LABEL_LEASE_OF

# This suite shares its engine with any other run (a CI matrix, the demo started beside it
# by .ci/run). So that each counts only what it made and touches nothing else:
# - everything the suite makes, in its own process and in every pytest run it starts,
#   carries SUITE_LABEL (--dockernet-label through the environment), and the leak check
#   at the end counts only that;
# - everything carries a host name of the suite's own (PYTEST_DOCKERNET_HOST): other runs
#   cannot judge its runs' liveness, so their start-up sweeps never remove the leftovers a
#   test keeps on purpose, and the suite's own sweeps judge only the suite's runs;
# - the runs it starts do not sweep each other's leftovers either (a run that just ended
#   is "dead"); the tests of the sweep turn it back on under a host name of their own.
# xdist workers inherit the controller's values.
SUITE_ID = os.environ.setdefault("DOCKERNET_SUITE_ID", new_run_id())
SUITE_LABEL_KEY = "dockernet-suite"
SUITE_LABELS = {SUITE_LABEL_KEY: SUITE_ID}
SUITE_HOST = f"{socket.gethostname()}-suite-{SUITE_ID}"
os.environ.setdefault("PYTEST_DOCKERNET_LABELS", f"{SUITE_LABEL_KEY}={SUITE_ID}")
os.environ.setdefault("PYTEST_DOCKERNET_HOST", SUITE_HOST)
os.environ.setdefault("PYTEST_DOCKERNET_SWEEP", "0")
# Sweeps and plain prunes of the suite's runs judge only the suite's runs: other hosts' runs
# whose lease expired are another suite's or user's, not this suite's to remove.
os.environ.setdefault("PYTEST_DOCKERNET_SWEEP_LABEL", f"{SUITE_LABEL_KEY}={SUITE_ID}")

# Built from the host's static busybox (Debian: busybox-static): no registry is needed.
TEST_IMAGE = os.environ.get("DOCKERNET_TEST_IMAGE", "dockernet-test/busybox:1")


@pytest.fixture(scope="session")
def image(docker_client: docker.DockerClient) -> str:
    """The test image, imported once per engine even under xdist (a file lock guards it)."""
    return import_busybox(docker_client, TEST_IMAGE)


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A second engine of the test's own (see second_engine.py), torn down afterwards."""
    if shutil.which("dockerd") is None or os.getuid() != 0:
        pytest.skip("needs dockerd and root to run a second engine")
    with running_engine() as second:
        yield second


@pytest.fixture
def manager(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NetworkManager]:
    """A core manager of a fresh run id of its own, closed after the test."""
    created = NetworkManager.for_client(docker_client, core_identity())
    yield created
    created.close()


@pytest.fixture
def planted_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A host name and a state directory of this test's own, for planted runs and the runs
    that must judge them: no other test, and no other run on the engine, judges or sweeps
    a run of this host. Set for this process (the command in-process) and returned for
    the runs the test starts."""
    env = {HOST_ENV: f"planted-{new_run_id()}", STATE_DIR_ENV: str(tmp_path / "state")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def prune_afterwards() -> Iterator[Callable[[str], None]]:
    """``prune_afterwards(run)``: remove that run's resources when the test ends, however it ends
    (for tests that keep resources on purpose and check them before removing them)."""
    runs: list[str] = []
    yield runs.append
    for run in runs:
        subprocess.run(
            [sys.executable, "-m", "pytest_dockernet", "prune", "--run", run, "--force"], capture_output=True
        )


def core_identity(worker: str = "core") -> RunIdentity:
    """A fresh run identity for tests of the core, carrying the suite's label."""
    return RunIdentity(run=new_run_id(), worker=worker, extra_labels=dict(SUITE_LABELS))


def suite_resources(client: docker.DockerClient) -> tuple[list[dict], list[dict], list[dict]]:
    """The containers, networks and volumes this suite made that are still on the engine: those
    with its label, and those with its host name (core scripts the suite runs carry no label)."""
    containers: dict[str, dict] = {}
    networks: dict[str, dict] = {}
    volumes: dict[str, dict] = {}
    for label in (f"{SUITE_LABEL_KEY}={SUITE_ID}", f"{LABEL_HOST}={SUITE_HOST}"):
        filters = {"label": [label]}
        containers.update((c["Id"], c) for c in client.api.containers(all=True, filters=filters))
        networks.update((n["Id"], n) for n in client.api.networks(filters=filters))
        volumes.update((v["Name"], v) for v in client.api.volumes(filters=filters).get("Volumes") or [])
    return list(containers.values()), list(networks.values()), list(volumes.values())


# For a suite that pytester runs: removing a container named *stuck fails.
FAILING_REMOVAL_CONFTEST = f"""
IMAGE = {TEST_IMAGE!r}
from pytest_dockernet.engine import cleanup
from pytest_dockernet.runs import reaper

real_remove = cleanup.remove_container

# Injected: this engine removes containers fine, so the CircleCI fault (a storage driver
# that cannot remove a root filesystem) is faked for containers named *stuck, for the
# whole session (teardown runs in the background, after the test's own fixtures). On
# such an engine the reaper's removals would fail too, so no reaper is started here.
def remove(client, container_id, name):
    if name.endswith("-stuck"):
        return cleanup.CleanupFailure("container", container_id, name, "driver btrfs failed to remove root filesystem")
    return real_remove(client, container_id, name)

cleanup.remove_container = remove
reaper.ensure_reaper = lambda *args, **kwargs: False
"""


# The podman job (.ci/run: python tests/podman_engine.py ...) runs the suite on podman.
ON_PODMAN = os.environ.get(ENGINE_KIND_ENV) == "podman"

# The key under which the engine reports the MTU option a network was created with: podman
# takes Docker's option and reports it as its own.
MTU_OPTION = "mtu" if ON_PODMAN else "com.docker.network.driver.mtu"

# Containers that look up a name which must NOT resolve use this upstream, so the
# embedded DNS never forwards the query to the host's resolvers. On podman, dns= would
# replace its DNS server, not be its upstream; the suite's podman forwards to loopback.
NO_UPSTREAM_DNS: dict[str, list[str]] = {} if ON_PODMAN else {"dns": ["127.0.0.1"]}


# Docker 20.10 opens every bridge network to every other for a moment whenever any network
# is created on the engine: it deletes and re-inserts FORWARD's jump to its isolation chain
# (measured: the jump missing in 63 of 3,810 reads of FORWARD during 60 creations). A probe
# of isolation that sends one packet is answered now and then (1 in 150 partitions, with
# networks being made beside it); isolation holds if a burst of pings is not answered whole.
def wait_until_gone(client: docker.DockerClient, run: str, timeout: float = 30.0) -> None:
    """Wait for everything of ``run`` to leave the engine, its lease too (its reaper removes
    that last, once the run's processes have ended)."""
    deadline = time.monotonic() + timeout
    while True:
        left = client.api.containers(all=True, filters={"label": [f"{LABEL_LEASE_OF}={run}"]})
        left += client.api.containers(all=True, filters={"label": [f"{LABEL_RUN}={run}"]})
        left += client.api.networks(filters={"label": [f"{LABEL_RUN}={run}"]})
        if not left:
            return
        assert time.monotonic() < deadline, (
            f"run {run} left {[item.get('Names') or item.get('Name') for item in left]}"
        )
        time.sleep(0.1)


def reaches(source: Any, target: str) -> bool:
    """Whether every one of three pings from service ``source`` to ``target`` is answered."""
    return "3 packets received" in source.exec(["ping", "-c3", "-i0.2", "-W1", target]).output


def create_plain_network(client: docker.DockerClient, name: str, **kwargs: Any) -> str:
    """A network made with docker-py alone, as another tool would; its ID.

    Tried again, as the plugin's allocator does, when podman lost a host interface that
    vanished while it read the host's addresses (``podman.is_interface_race``: seen once
    in the podman job, while the other worker's networks came and went).
    """
    return str(retry_interface_race(lambda: client.api.create_network(name, **kwargs))["Id"])


# aardvark-dns before 1.11 (podman 4.3 has 1.4) stops and restarts all its listeners
# whenever netavark signals a change (any container starting or stopping on the engine),
# and queries that arrive meanwhile are lost: containers/aardvark-dns#389, fixed by #449.
# Measured in the podman job (-n 2 beside pytester sessions): in 2 of 6 rounds, a lookup
# right after a container stopped timed out after 45 s, and the next one answered. In the
# podman job, a lookup that timed out is tried again for up to LOST_LOOKUP_SECONDS, and
# one that failed as "bad address" (which is also what a name that must not resolve gives)
# twice: here in the test process, for Service.exec and Network.run_job, never in the plugin.
LOOKUP_COMMANDS = ("nslookup", "wget", "nc ", "ping")
TIMED_OUT = "connection timed out; no servers could be reached"
BAD_ADDRESS = "bad address"
LOST_LOOKUP_SECONDS = 150.0


def retrying_lost_lookups(run: Callable[..., Any]) -> Callable[..., Any]:
    """``run`` (``Service.exec`` or ``Network.run_job``), trying a lookup lost as above again."""

    @functools.wraps(run)
    def retrying(self: Any, *args: Any, **kwargs: Any) -> Any:
        command = kwargs.get("cmd", kwargs.get("command", args[-1] if args else ""))
        text = command if isinstance(command, str) else " ".join(map(str, command or []))
        looks_up = "stdin" not in kwargs and any(c in text for c in LOOKUP_COMMANDS)
        deadline = time.monotonic() + LOST_LOOKUP_SECONDS
        result = run(self, *args, **kwargs)
        bad_addresses = 0
        while looks_up and result.exit_code != 0:
            if TIMED_OUT not in result.output or time.monotonic() >= deadline:
                if BAD_ADDRESS not in result.output or bad_addresses == 2:
                    break
                bad_addresses += 1
            result = run(self, *args, **kwargs)
        return result

    return retrying


if ON_PODMAN:
    from pytest_dockernet.core.network import Network
    from pytest_dockernet.core.service import Service

    Service.exec = retrying_lost_lookups(Service.exec)  # type: ignore[method-assign]
    Network.run_job = retrying_lost_lookups(Network.run_job)  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "docker_only(reason): tests what only Docker does; skipped in the podman job (reason: how podman differs)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not ON_PODMAN:
        return
    for item in items:
        marker = item.get_closest_marker("docker_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"podman: {marker.args[0]}"))


@pytest.hookimpl(trylast=True)  # after session-scoped fixtures (worker networks) are torn down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when anything this suite made is left on the engine (others' are not counted)."""
    if hasattr(session.config, "workerinput"):
        return
    try:
        client = docker.from_env()
        containers, networks, volumes = suite_resources(client)
    except docker.errors.DockerException:
        return
    # This run's own lease goes with its reaper, after this process is gone.
    own = session.config.stash[state_key].identity.run
    containers = [c for c in containers if (c.get("Labels") or {}).get(LABEL_LEASE_OF) != own]
    if containers or networks or volumes:
        names = (
            [c["Names"][0] for c in containers] + [n["Name"] for n in networks] + [v["Name"] for v in volumes]
        )
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"LEAK: resources of this suite ({SUITE_LABEL_KEY}={SUITE_ID}) are left: {names}", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
