"""What one pytest process of a run keeps, and the small helpers every piece of the glue uses."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NoReturn, TypeVar

import pytest

from ..core.manager import NetworkManager, Tally
from ..core.network import Network
from ..engine.cleanup import CleanupFailure, warn_failures
from ..engine.naming import RunIdentity
from ..engine.processes import format_start
from ..errors import DockernetError
from ..runs.rundir import RunDir
from .settings import Settings

T = TypeVar("T")


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
factory_networks_key = pytest.StashKey[list[Network]]()
"""The networks a test's ``docker_network_factory`` made (for its failure report)."""


def store_tally(state: PluginState, tally: Tally, *, finished: bool = False) -> None:
    """Write this worker's counts to the run's directory, where the controller's summary reads them.

    Written at every change, not only at the session's end: a worker that crashes (killed,
    ``os._exit`` in a test) leaves its last counts, and the summary adds what the reaper
    removed for it. The file is the process's own (its pid), so its replacement's is another.
    """
    if state.run_dir is None:
        return
    identity = state.identity
    record = {
        "tally": asdict(tally),
        "worker": identity.worker,
        "pid": identity.process.pid,
        "start": format_start(identity.process.started),
        "finished": finished,
    }
    with contextlib.suppress(OSError):  # the summary says what it could not read
        state.run_dir.write_tally(f"{identity.worker}-{identity.process.pid}", record)


def state_of(config: pytest.Config) -> PluginState:
    """This process's :class:`PluginState`."""
    return config.stash[state_key]


def attempt(action: Callable[[], T]) -> T:
    """``action()``, or the test fails with the plugin error's one sentence, printed once.

    pytest.fail raised inside an ``except`` block would chain the error to it ("During
    handling of the above exception...") and print the sentence twice: it is raised after.
    """
    __tracebackhide__ = True
    try:
        return action()
    except DockernetError as exc:
        error = exc
    fail(error)


def fail(exc: Exception | str) -> NoReturn:
    """Fail the test with one sentence and no traceback."""
    __tracebackhide__ = True
    pytest.fail(str(exc), pytrace=False)


def release(manager: NetworkManager, network: Network) -> None:
    """Hand ``network`` to background teardown; warn about removals that failed so far."""
    manager.release_later(network)
    report_failures(manager.collect())


def report_failures(failures: list[CleanupFailure]) -> None:
    """Warn about what could not be removed.

    A warning that a filter turns into an error is swallowed: the terminal summary lists
    every failure anyway, and cleanup must never fail a test.
    """
    warn_failures(failures, stacklevel=3)
