"""The pytest glue: options, fixtures and reporting. The work happens in the core modules."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import docker
import docker.errors
import pytest

from ..core.manager import NetworkManager, Tally
from ..core.network import HERMETIC_ON_PODMAN, Network
from ..core.volumes import Volume
from ..engine import connection as engine
from ..engine import images
from ..engine.cleanup import CleanupFailure, find_labelled, warn_failures
from ..engine.naming import Labels, RunIdentity, new_run_id
from ..engine.podman import is_podman
from ..engine.statedir import default_state_dir, ensure_private_dir
from ..errors import DockernetError
from ..runs import lease, reaper
from ..runs import sweeper as runs
from ..runs.rundir import RunDir
from ..text import joined, plural
from .report import report_sections
from .services import start_group
from .settings import (
    EXPECTED,
    HELP,
    OPTIONS,
    SETTING_KEYS,
    Settings,
    SettingsError,
    env_name,
    ini_name,
    option_name,
    resolve,
)

T = TypeVar("T")

RUN_INPUT_KEY = "dockernet_run"
ROOT_PID_INPUT_KEY = "dockernet_root_pid"
ROOT_START_INPUT_KEY = "dockernet_root_start"


@dataclass
class PluginState:
    """What one pytest process knows about its part of the run."""

    settings: Settings
    identity: RunIdentity
    manager: NetworkManager | None = None
    run_dir: RunDir | None = None
    engine_slot: str = ""
    """Which of the run's engines this process uses ("" for the first, or only, one)."""


state_key = pytest.StashKey[PluginState]()
next_item_key = pytest.StashKey["pytest.Item | None"]()
# Flags that are on unless turned off: their command-line form is --dockernet-no-KEY.
DEFAULT_ON_FLAGS = ("sweep", "prefetch")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dockernet", "isolated Docker networks (pytest-dockernet)")
    for option in OPTIONS:
        where = f" [env {env_name(option.key)}; ini {ini_name(option.key)}]"
        if option.key in DEFAULT_ON_FLAGS:
            group.addoption(
                f"--dockernet-no-{option.key}",
                dest=f"dockernet_{option.key}",
                action="store_false",
                default=None,
                help=HELP[f"no_{option.key}"] + where,
            )
        elif option.metavar is None:
            group.addoption(
                option_name(option.key), action="store_true", default=None, help=HELP[option.key] + where
            )
        else:
            group.addoption(
                option_name(option.key),
                dest=f"dockernet_{option.key}",
                metavar=option.metavar,
                action="append" if option.repeatable else "store",
                help=HELP[option.key] + where,
            )
        parser.addini(ini_name(option.key), HELP[option.key], type=_ini_type(option.ini_type), default=None)  # type: ignore[arg-type]


def _ini_type(wanted: str | None) -> str | None:
    # pytest reads int and float ini values since 8.4; before, they are strings (validated here).
    if wanted in ("int", "float") and tuple(int(part) for part in pytest.__version__.split(".")[:2]) < (8, 4):
        return None
    return wanted


def _ini(config: pytest.Config, key: str) -> Any:
    """An ini value as pytest typed it; a value of the wrong type is one sentence naming the option."""
    try:
        return config.getini(ini_name(key))
    except (pytest.UsageError, ValueError) as exc:
        problem = exc
    raise pytest.UsageError(
        f"pytest-dockernet: ini option {ini_name(key)}: {problem}; expected {EXPECTED[key]}"
    ) from None


def pytest_configure(config: pytest.Config) -> None:
    cli = {key: config.getoption("dockernet_" + key) for key in SETTING_KEYS}
    ini = {key: _ini(config, key) for key in SETTING_KEYS}
    try:
        settings = resolve(cli, os.environ, ini)
    except SettingsError as exc:
        raise pytest.UsageError(f"pytest-dockernet: {exc}") from None
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    inherited = workerinput or {}
    slot = _place_on_engine(settings, workerinput["workerid"] if workerinput else "main")
    identity = RunIdentity(
        run=inherited.get(RUN_INPUT_KEY) or new_run_id(),
        root_pid=inherited.get(ROOT_PID_INPUT_KEY) or os.getpid(),
        root_started=inherited.get(ROOT_START_INPUT_KEY),
        worker=workerinput["workerid"] if workerinput else "main",
        prefix=settings.prefix,
        keep=settings.keep,
        extra_labels=dict(settings.labels),
    )
    config.stash[state_key] = PluginState(settings, identity, engine_slot=slot)
    config.addinivalue_line(
        "markers",
        "dockernet(internal=False, hermetic=False, ipv6=False, options=None, labels=None): configure"
        " the docker_network of this test (on a class or module: also the class- and module-scoped"
        " networks of its declarative services)",
    )
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(config), "dockernet-xdist")


def _place_on_engine(settings: Settings, worker: str) -> str:
    """Point this process at its engine among ``--dockernet-engine``'s: xdist worker gwN gets
    engine N modulo their number, any other process the first. Everything of the process
    (the plugin, docker-py's ``from_env`` in tests, the reaper it starts) then uses it through
    ``DOCKER_HOST``. Returns the engine's slot: "" for the first, else its index."""
    if not settings.engines:
        return ""
    number = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    index = number % len(settings.engines)
    os.environ["DOCKER_HOST"] = settings.engines[index]
    os.environ.pop("DOCKER_CONTEXT", None)
    return str(index) if index else ""


class XdistHooks:
    """Shares the run id and the root process with the workers."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        identity = self.config.stash[state_key].identity
        node.workerinput[RUN_INPUT_KEY] = identity.run
        node.workerinput[ROOT_PID_INPUT_KEY] = identity.root_pid
        node.workerinput[ROOT_START_INPUT_KEY] = identity.root_started


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # A worker's tally goes to the run's directory rather than through execnet: it then
    # reaches the controller's summary even when the run was interrupted (Ctrl-C), which
    # stops the controller from reading what workers send.
    state = session.config.stash.get(state_key, None)
    if state is None or state.manager is None or state.run_dir is None:
        return
    if hasattr(session.config, "workerinput"):
        state.run_dir.write_tally(state.identity.worker, asdict(state.manager.tally))


def _worker_tallies(state: PluginState) -> list[Tally]:
    run_dir = state.run_dir or RunDir(default_state_dir(), state.identity.run)
    tallies = []
    for data in run_dir.tallies().values():
        failures = [CleanupFailure(**f) for f in data.pop("failures", [])]
        tallies.append(Tally(**data, failures=failures))
    return tallies


def _unaccounted(settings: Settings, run: str, failures: list[CleanupFailure]) -> str | None:
    """What of the run is still on its engines although no failure accounts for it."""
    containers: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    try:
        for url in settings.engines or (None,):
            client = engine.connect(timeout=settings.engine_timeout, url=url)
            try:
                found = find_labelled(client, run)
            finally:
                client.close()
            containers += found[0]
            networks += found[1]
    except Exception as exc:  # noqa: BLE001 - the summary must never fail
        return f"could not check the engine for leftovers of the run: {engine.readable_reason(exc)}"
    failed = {failure.id for failure in failures}
    networks = [n for n in networks if n["Id"] not in failed]
    containers = [c for c in containers if c["Id"] not in failed]
    if not networks and not containers:
        return None
    return (
        f"{plural(len(networks), 'network')} and {plural(len(containers), 'container')} of the run"
        " are still on the engine (a process of the run did not finish its teardown); the"
        " reaper removes them once the run's processes are gone"
    )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(state_key, None)
    if state is None or hasattr(config, "workerinput"):
        return
    tallies = _worker_tallies(state)
    if state.manager is not None:
        tallies.append(state.manager.tally)
    if not tallies:
        return
    run = state.identity.run
    total = Tally()
    for tally in tallies:
        total.add(tally)
    write = terminalreporter.write_line
    terminalreporter.section("pytest-dockernet")
    if total.swept_runs:
        write(
            f"swept {plural(total.swept, 'resource')} left by {plural(len(total.swept_runs), 'dead run')}"
            f" ({', '.join(total.swept_runs)}) before starting"
        )
    if total.sweep_problem:
        write(f"the start-up sweep of dead runs failed: {total.sweep_problem}")
    created = [plural(total.networks_created, "network"), plural(total.containers_created, "container")]
    removed = [plural(total.networks_removed, "network"), plural(total.containers_removed, "container")]
    if total.volumes_created:
        created.append(plural(total.volumes_created, "volume"))
        removed.append(plural(total.volumes_removed, "volume"))
    write(f"run {run}: created {joined(created)}; removed {joined(removed)}")
    if total.kept or total.kept_volumes:
        kept = [plural(len(total.kept), "network"), plural(total.kept_containers, "container")]
        if total.kept_volumes:
            kept.append(plural(total.kept_volumes, "volume"))
        write(f"kept {joined(kept)} (--dockernet-keep): " + ", ".join(sorted(total.kept)))
    if total.failures:
        write(f"left behind {plural(len(total.failures), 'resource')} that could not be removed:")
        for failure in total.failures:
            write(f"  {failure}")
    if total.kept or total.kept_volumes or total.failures:
        write("remove them with:")
        write(f"  {removal_command(run)}")
    if not state.settings.keep:
        unaccounted = _unaccounted(state.settings, run, total.failures)
        if unaccounted:
            write(unaccounted)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    item.stash[next_item_key] = nextitem


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    # While this test runs, the engine makes the next test's network: its setup then
    # starts with the network there (see NetworkManager.prefetch_network).
    _prefetch_for(item.stash.get(next_item_key, None))


def _prefetch_for(item: pytest.Item | None) -> None:
    if item is None:
        return
    state = item.config.stash.get(state_key, None)
    if state is None or state.manager is None or not state.settings.prefetch:
        return
    if not _uses_plugin_network(item) or _may_skip(item):
        return
    found, problem = _network_settings(item, state.settings)
    if problem is None:  # else its fixture reports the problem
        state.manager.prefetch_network(test=item.nodeid, **found)


def _uses_plugin_network(item: pytest.Item) -> bool:
    """Whether ``item`` requests this plugin's ``docker_network`` (not an override of it)."""
    # As in fixtures._spec_of: the item's fixture info (stable since pytest 3) has the definitions.
    try:
        definitions: Sequence[Any] = item._fixtureinfo.name2fixturedefs.get("docker_network") or ()  # type: ignore[attr-defined]
    except AttributeError:
        return False
    return bool(definitions) and getattr(definitions[-1], "func", None) is _docker_network_function


def _may_skip(item: pytest.Item) -> bool:
    """Whether ``item`` may be skipped before its fixtures run: its network would go unused."""
    for marker in item.iter_markers():
        if marker.name in ("skip", "skipif") or (
            marker.name == "xfail" and not marker.kwargs.get("run", True)
        ):
            return True
    return False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    state = item.config.stash.get(state_key, None)
    if report.failed and report.when in ("setup", "call") and state is not None:
        # A readiness time-out's message holds the service's last log lines already.
        shown = getattr(call.excinfo.value if call.excinfo else None, "service", "")
        for title, content in report_sections(
            networks_of(item), state.settings.log_lines, logs_shown={shown}
        ):
            report.sections.append((f"dockernet: {title}", content))
    return report


def networks_of(item: pytest.Item) -> list[Network]:
    """The networks a test used: fixture values, and what its network factory made."""
    found: list[Network] = []
    values = list(getattr(item, "funcargs", {}).values()) + item.stash.get(factory_networks_key, [])
    for value in values:
        network = value if isinstance(value, Network) else getattr(value, "network", None)
        if isinstance(network, Network) and network not in found:
            found.append(network)
    return found


factory_networks_key = pytest.StashKey[list[Network]]()


def removal_command(run: str) -> str:
    """One shell command that removes every resource of ``run``, containers first."""
    return f"pytest-dockernet prune --run {run}"


def _state(config: pytest.Config) -> PluginState:
    return config.stash[state_key]


def _attempt(action: Callable[[], T]) -> T:
    """``action()``, or the test fails with the plugin error's one sentence, printed once.

    pytest.fail raised inside an ``except`` block would chain the error to it ("During
    handling of the above exception...") and print the sentence twice: it is raised after.
    """
    __tracebackhide__ = True
    try:
        return action()
    except DockernetError as exc:
        error = exc
    _fail(error)


def _fail(exc: Exception | str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(str(exc), pytrace=False)


def _release(manager: NetworkManager, network: Network) -> None:
    """Hand ``network`` to background teardown; warn about removals that failed so far."""
    manager.release_later(network)
    _report(manager.collect())


def _report(failures: list[CleanupFailure]) -> None:
    # A warning that a filter turns into an error is swallowed here: the terminal
    # summary lists every failure anyway, and cleanup must never fail a test.
    warn_failures(failures, stacklevel=3)


@pytest.fixture(scope="session")
def docker_client(pytestconfig: pytest.Config) -> Iterator[docker.DockerClient]:
    """A ``docker.DockerClient`` from the environment (``DOCKER_HOST`` and friends)."""
    __tracebackhide__ = True
    settings = _state(pytestconfig).settings
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
    _fail(error)


@pytest.fixture(scope="session")
def dockernet_manager(
    docker_client: docker.DockerClient, pytestconfig: pytest.Config
) -> Iterator[NetworkManager]:
    """The :class:`NetworkManager` of this process: creates and accounts for networks."""
    __tracebackhide__ = True
    state = _state(pytestconfig)
    settings = state.settings
    identity = state.identity
    if settings.hermetic and is_podman(docker_client):
        _fail(HERMETIC_ON_PODMAN)  # once, for the whole run, before it makes anything
    state_dir = _attempt(lambda: ensure_private_dir(default_state_dir()))
    # Registered before this process may create anything: the reaper waits for it.
    run_dir = state.run_dir = RunDir(state_dir, identity.run)
    run_dir.register(identity.process)
    manager = _attempt(
        lambda: NetworkManager.for_client(
            docker_client,
            identity,
            pools=settings.pools,
            subnet_size=settings.subnet_size,
            lock_timeout=settings.lock_timeout,
            state_dir=state_dir,
            pools6=settings.pools6,
            driver=settings.driver,
        )
    )
    started = not settings.keep and _attempt(
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
        _attempt(lambda: _take_lease(docker_client, identity, settings.lease))
    state.manager = manager
    if started and settings.sweep:
        _sweep(manager, state_dir, settings.sweep_label)
    yield manager
    _report(manager.close())


def _take_lease(client: docker.DockerClient, identity: RunIdentity, seconds: float) -> None:
    """The run's first lease, before it makes anything: its reaper renews it."""
    with engine.engine_errors(f"taking the lease of run {identity.run}"):
        lease.take_lease(
            client, identity.run, seconds, identity.labels(), lease.lease_name(identity.prefix, identity.run)
        )


def _sweep(manager: NetworkManager, state_dir: Path, sweep_label: tuple[str, str] | None) -> None:
    """Once per run, by the process that started its reaper: remove what dead runs left."""
    try:
        with engine.engine_errors("sweeping the dead runs off the engine"):
            report = runs.sweep_dead_runs(manager.client, state_dir, manager.engine, sweep_label)
    except (DockernetError, docker.errors.DockerException) as exc:
        manager.tally.sweep_problem = str(exc)
        return
    if report is not None:
        manager.tally.swept_runs.extend(report.runs)
        manager.tally.swept += report.removed
        manager.tally.failures.extend(report.failures)


def _new_network(manager: NetworkManager, test: str | None, **kwargs: Any) -> Network:
    __tracebackhide__ = True
    return _attempt(lambda: manager.create_network(test=test, **kwargs))


MARKER_KEYWORDS: dict[str, type | tuple[type, ...]] = {
    "internal": bool,
    "hermetic": bool,
    "ipv6": bool,
    "options": dict,
    "labels": (dict, list),
}


def _marked(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The network settings of ``@pytest.mark.dockernet`` nearest the requesting node, with defaults."""
    __tracebackhide__ = True
    found, problem = _network_settings(request.node, _state(request.config).settings)
    if problem is not None:
        _fail(problem)
    return found


def _network_settings(
    node: pytest.Item | pytest.Collector, settings: Settings
) -> tuple[dict[str, Any], str | None]:
    """The network settings of the ``dockernet`` marker nearest ``node``, or what is wrong with it."""
    found: dict[str, Any] = {"hermetic": settings.hermetic}
    marker = node.get_closest_marker("dockernet")
    if marker is None:
        return found, None
    valid = ", ".join(MARKER_KEYWORDS)
    if marker.args:
        return found, f"@pytest.mark.dockernet takes keywords only ({valid}), not {marker.args!r}"
    for key, value in marker.kwargs.items():
        if key not in MARKER_KEYWORDS:
            return found, f"@pytest.mark.dockernet does not take {key!r}; its keywords are {valid}"
        if not isinstance(value, MARKER_KEYWORDS[key]):
            return (
                found,
                f"@pytest.mark.dockernet({key}={value!r}): {key} must be a {_kind(MARKER_KEYWORDS[key])}",
            )
        found[key] = value
    return found, None


def _kind(expected: type | tuple[type, ...]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(kind.__name__ for kind in kinds)


@pytest.fixture
def docker_network(dockernet_manager: NetworkManager, request: pytest.FixtureRequest) -> Iterator[Network]:
    """A new network for this test, removed with everything on it when the test ends.

    ``@pytest.mark.dockernet(internal=..., hermetic=..., ipv6=..., options=..., labels=...)``
    configures it.
    """
    network = _new_network(dockernet_manager, request.node.nodeid, **_marked(request))
    start_group(request, network)
    yield network
    _release(dockernet_manager, network)


_docker_network_function = getattr(docker_network, "__wrapped__", docker_network)


@pytest.fixture(scope="session")
def docker_worker_network(
    dockernet_manager: NetworkManager, pytestconfig: pytest.Config
) -> Iterator[Network]:
    """One network for this xdist worker (or the whole run without xdist)."""
    network = _new_network(dockernet_manager, None, hermetic=_state(pytestconfig).settings.hermetic)
    yield network
    _release(dockernet_manager, network)


def _scoped_network(scope: str) -> Any:
    """A network fixture of ``scope``: one body for the class, module and package scopes."""

    def network_of_scope(
        dockernet_manager: NetworkManager, request: pytest.FixtureRequest
    ) -> Iterator[Network]:
        network = _new_network(dockernet_manager, request.node.nodeid, **_marked(request))
        yield network
        _release(dockernet_manager, network)

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
        _attempt(lambda: images.build_image(docker_client, context, tag))
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
        volume = _attempt(
            lambda: dockernet_manager.create_volume(
                test=request.node.nodeid, labels=labels, driver=driver, driver_opts=driver_opts
            )
        )
        made.append(volume)
        return volume

    yield make
    for volume in reversed(made):
        dockernet_manager.release_volume_later(volume)
    _report(dockernet_manager.collect())


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
    default_hermetic = _state(request.config).settings.hermetic

    def make(
        *,
        internal: bool = False,
        hermetic: bool | None = None,
        ipv6: bool = False,
        labels: Labels | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        __tracebackhide__ = True
        network = _new_network(
            dockernet_manager,
            request.node.nodeid,
            internal=internal,
            hermetic=default_hermetic if hermetic is None else hermetic,
            ipv6=ipv6,
            labels=labels,
            options=options,
        )
        made.append(network)
        request.node.stash.setdefault(factory_networks_key, []).append(network)
        return network

    yield make
    for network in reversed(made):
        dockernet_manager.release_later(network)
    _report(dockernet_manager.collect())
