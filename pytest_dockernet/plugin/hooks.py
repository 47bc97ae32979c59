"""The plugin's hooks: options, settings, xdist, prefetching, failure reports and the summary."""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from ..core import faults
from ..core.compose import ComposeStack
from ..core.network import Network
from ..engine.naming import RunIdentity, new_run_id
from ..errors import CleanupWarning
from .fixtures import DOCKER_NETWORK_FUNCTION
from .markers import MARKER_LINE, network_spec
from .report import report_sections
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
from .state import PluginState, factory_networks_key, next_item_key, state_key, store_tally
from .summary import write_summary

RUN_INPUT_KEY = "dockernet_run"
ROOT_PID_INPUT_KEY = "dockernet_root_pid"
ROOT_START_INPUT_KEY = "dockernet_root_start"
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
    os.environ[faults.FAULT_IMAGE_ENV] = settings.fault_image  # the core reads it there
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
    config.addinivalue_line("markers", MARKER_LINE)
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
        store_tally(state, state.manager.tally, finished=True)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(state_key, None)
    if state is None or hasattr(config, "workerinput"):
        return
    write_summary(terminalreporter, state)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # A fault never outlives its test: healed before the test's fixtures go, so that a
    # module's services go on whole; whatever failed, timed out or was interrupted.
    for problem in faults.heal_all():
        warnings.warn(problem, CleanupWarning, stacklevel=1)


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
    spec, problem = network_spec(item, state.settings, item.nodeid)
    if problem is None:  # else its fixture reports the problem
        state.manager.prefetch_network(spec)


def _uses_plugin_network(item: pytest.Item) -> bool:
    """Whether ``item`` requests this plugin's ``docker_network`` (not an override of it)."""
    # As in services.declaration_of: the item's fixture info (stable since pytest 3) has the definitions.
    try:
        definitions: Sequence[Any] = item._fixtureinfo.name2fixturedefs.get("docker_network") or ()  # type: ignore[attr-defined]
    except AttributeError:
        return False
    return bool(definitions) and getattr(definitions[-1], "func", None) is DOCKER_NETWORK_FUNCTION


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
        candidates: list[Any]
        if isinstance(value, ComposeStack):
            candidates = list(value.networks.values())
        else:
            candidates = [value if isinstance(value, Network) else getattr(value, "network", None)]
        for network in candidates:
            if isinstance(network, Network) and network not in found:
                found.append(network)
    return found
