"""The plugin's fixtures: the engine, this process's manager, networks of every scope, builds, volumes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from ..core.manager import NetworkManager
from ..core.network import Network, refuse_unsupported
from ..core.specs import NetworkSpec
from ..core.volumes import Volume
from ..engine import connection as engine
from ..engine import images
from ..engine.naming import Labels, RunIdentity
from ..engine.statedir import default_state_dir, ensure_private_dir
from ..errors import DockernetError
from ..runs import lease, reaper, sweeper
from ..runs.rundir import RunDir
from .markers import network_spec
from .services import start_group
from .state import attempt, factory_networks_key, fail, release, report_failures, state_of, store_tally


@pytest.fixture(scope="session")
def docker_client(pytestconfig: pytest.Config) -> Iterator[docker.DockerClient]:
    """A ``docker.DockerClient`` from the environment (``DOCKER_HOST`` and friends)."""
    __tracebackhide__ = True
    settings = state_of(pytestconfig).settings
    try:
        client = engine.connect(timeout=settings.engine_timeout)
    except DockernetError as exc:
        error = exc
    else:
        yield client
        client.close()
        return
    if settings.skip_without_engine:
        pytest.skip(f"needs a Docker engine: {error}")
    fail(error)


@pytest.fixture(scope="session")
def dockernet_manager(
    docker_client: docker.DockerClient, pytestconfig: pytest.Config
) -> Iterator[NetworkManager]:
    """The :class:`NetworkManager` of this process: creates and accounts for networks."""
    __tracebackhide__ = True
    state = state_of(pytestconfig)
    settings = state.settings
    identity = state.identity
    # Once, for the whole run, before it makes anything: the settings' own network.
    attempt(lambda: refuse_unsupported(docker_client, NetworkSpec(hermetic=settings.hermetic)))
    state_dir = attempt(lambda: ensure_private_dir(default_state_dir()))
    # Registered before this process may create anything: the reaper waits for it.
    run_dir = state.run_dir = RunDir(state_dir, identity.run)
    attempt(lambda: run_dir.register(identity.process))
    manager = attempt(
        lambda: NetworkManager.for_client(
            docker_client,
            identity,
            pools=settings.pools,
            subnet_size=settings.subnet_size,
            lock_timeout=settings.lock_timeout,
            state_dir=state_dir,
            pools6=settings.pools6,
            driver=settings.driver,
            pool_timeout=settings.pool_timeout,
        )
    )
    started = not settings.keep and attempt(
        lambda: reaper.ensure_reaper(
            run_dir,
            identity.root,
            state_dir,
            lock_timeout=settings.lock_timeout,
            lease=settings.lease,
            slot=state.engine_slot,
        )
    )
    if started and settings.lease:
        attempt(lambda: _take_lease(docker_client, identity, settings.lease))
    state.manager = manager
    if hasattr(pytestconfig, "workerinput"):
        manager.on_change = lambda tally: store_tally(state, tally)
    if started and settings.sweep:
        _sweep(manager, state_dir, settings.sweep_label)
    yield manager
    report_failures(manager.close())


def _take_lease(client: docker.DockerClient, identity: RunIdentity, seconds: float) -> None:
    """The run's first lease, before it makes anything: its reaper renews it."""
    engine.with_retries(
        f"taking the lease of run {identity.run}",
        lambda: lease.take_lease(
            client, identity.run, seconds, identity.labels(), lease.lease_name(identity.prefix, identity.run)
        ),
    )


def _sweep(manager: NetworkManager, state_dir: Path, sweep_label: tuple[str, str] | None) -> None:
    """Once per run, by the process that started its reaper: remove what dead runs left."""
    try:
        with engine.engine_errors("sweeping the dead runs off the engine"):
            report = sweeper.sweep_dead_runs(manager.client, state_dir, manager.engine, sweep_label)
    except (DockernetError, docker.errors.DockerException) as exc:
        manager.tally.sweep_problem = str(exc)
        return
    if report is not None:
        manager.tally.swept_runs.extend(report.runs)
        manager.tally.swept += report.removed
        manager.tally.failures.extend(report.failures)


def new_network(manager: NetworkManager, spec: NetworkSpec) -> Network:
    """A network of ``spec``, or the test fails with the one sentence that says why."""
    __tracebackhide__ = True
    return attempt(lambda: manager.create_network(spec))


def marked_spec(request: pytest.FixtureRequest) -> NetworkSpec:
    """The spec of the network ``@pytest.mark.dockernet`` nearest the requesting node asks for."""
    __tracebackhide__ = True
    spec, problem = network_spec(request.node, state_of(request.config).settings, request.node.nodeid)
    if problem is not None:
        fail(problem)
    return spec


@pytest.fixture
def docker_network(dockernet_manager: NetworkManager, request: pytest.FixtureRequest) -> Iterator[Network]:
    """A new network for this test, removed with everything on it when the test ends.

    ``@pytest.mark.dockernet(internal=..., hermetic=..., ipv6=..., options=..., labels=...)``
    configures it.
    """
    network = new_network(dockernet_manager, marked_spec(request))
    try:
        start_group(request, network)
    except BaseException:
        # Interrupted (a time-out's signal, Ctrl-C) while the test's services started:
        # pytest runs no teardown for a fixture that never yielded, so it goes now.
        release(dockernet_manager, network)
        raise
    yield network
    release(dockernet_manager, network)


DOCKER_NETWORK_FUNCTION = getattr(docker_network, "__wrapped__", docker_network)
"""The function behind ``docker_network``: what tells this plugin's fixture from a user's override."""


@pytest.fixture(scope="session")
def docker_worker_network(
    dockernet_manager: NetworkManager, pytestconfig: pytest.Config
) -> Iterator[Network]:
    """One network for this xdist worker (or the whole run without xdist)."""
    spec = NetworkSpec(hermetic=state_of(pytestconfig).settings.hermetic)
    network = new_network(dockernet_manager, spec)
    yield network
    release(dockernet_manager, network)


def _scoped_network(scope: str) -> object:
    """A network fixture of ``scope``: one body for the class, module and package scopes."""

    def network_of_scope(
        dockernet_manager: NetworkManager, request: pytest.FixtureRequest
    ) -> Iterator[Network]:
        network = new_network(dockernet_manager, marked_spec(request))
        yield network
        release(dockernet_manager, network)

    network_of_scope.__doc__ = f"A network shared by the tests of one {scope}."
    return pytest.fixture(scope=scope, name=f"dockernet_{scope}_network")(network_of_scope)  # type: ignore[call-overload]


dockernet_class_network = _scoped_network("class")
dockernet_module_network = _scoped_network("module")
dockernet_package_network = _scoped_network("package")


@pytest.fixture(scope="session")
def docker_build(docker_client: docker.DockerClient) -> Callable[[str | os.PathLike[str], str], str]:
    """``docker_build(context_dir, tag) -> tag``: build an image once per run, even under xdist."""

    def build(context: str | os.PathLike[str], tag: str) -> str:
        __tracebackhide__ = True
        attempt(lambda: images.build_image(docker_client, context, tag))
        return tag

    return build


VolumeFactory = Callable[..., Volume]


@pytest.fixture
def docker_volume(
    dockernet_manager: NetworkManager, request: pytest.FixtureRequest
) -> Iterator[VolumeFactory]:
    """A callable that makes a named volume each call, labelled with the run; removed at test end.

    Takes ``labels``, ``driver`` (default ``local``) and ``driver_opts``. Mount one with
    ``volumes={volume: {"bind": "/data", "mode": "rw"}}`` or ``volumes=[volume.mount("/data")]``.
    """
    made: list[Volume] = []

    def make(
        *, labels: Labels | None = None, driver: str = "local", driver_opts: dict[str, str] | None = None
    ) -> Volume:
        __tracebackhide__ = True
        volume = attempt(
            lambda: dockernet_manager.create_volume(
                test=request.node.nodeid, labels=labels, driver=driver, driver_opts=driver_opts
            )
        )
        made.append(volume)
        return volume

    yield make
    for volume in reversed(made):
        dockernet_manager.release_volume_later(volume)
    report_failures(dockernet_manager.collect())


NetworkFactory = Callable[..., Network]


@pytest.fixture
def docker_network_factory(
    dockernet_manager: NetworkManager, request: pytest.FixtureRequest
) -> Iterator[NetworkFactory]:
    """A callable that makes another new network each call; all are removed at test end.

    Takes ``internal`` (no route outside), ``hermetic`` (no DNS upstream; default: the
    ``dockernet_hermetic`` setting), ``ipv6`` (dual-stack), ``labels`` and ``options``
    (driver options).
    """
    made: list[Network] = []
    default_hermetic = state_of(request.config).settings.hermetic

    def make(
        *,
        internal: bool = False,
        hermetic: bool | None = None,
        ipv6: bool = False,
        labels: Labels | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        __tracebackhide__ = True
        spec = NetworkSpec.of(
            test=request.node.nodeid,
            internal=internal,
            hermetic=default_hermetic if hermetic is None else hermetic,
            ipv6=ipv6,
            labels=labels,
            options=options,
        )
        network = new_network(dockernet_manager, spec)
        made.append(network)
        request.node.stash.setdefault(factory_networks_key, []).append(network)
        return network

    yield make
    for network in reversed(made):
        dockernet_manager.release_later(network)
    report_failures(dockernet_manager.collect())
