"""Services declared once as fixtures: ``redis = service_fixture("redis:7", alias="cache")``.

pytest sets fixtures up one at a time, so a test's function-scoped services would start
one after another. Instead, the test's ``docker_network`` fixture finds the service
fixtures the test requests (:func:`start_group`) and starts them together, level by
level in ``depends_on`` order; each service fixture then picks its started service up
(or the error that names it).
"""

from __future__ import annotations

import os
import sys
import threading
import types
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ..core import compose
from ..core.network import Network
from ..core.service import Service
from ..core.specs import Command, ServiceSpec
from ..core.together import run_together, shown
from ..core.wait import WaitArgument
from ..engine.cleanup import warn_failures
from ..errors import ArgumentError, ServiceStartError, hide_frames_of_own_errors
from .state import state_of

# The network fixture each scope's services start on.
NETWORK_FIXTURES = {
    "function": "docker_network",
    "class": "dockernet_class_network",
    "module": "dockernet_module_network",
    "package": "dockernet_package_network",
    "session": "docker_worker_network",
}
SPEC_ATTRIBUTE = "__dockernet_service__"


@dataclass(frozen=True)
class ServiceDeclaration:
    """What :func:`service_fixture` was told: the service's spec, and what it needs besides."""

    service: ServiceSpec
    scope: str
    depends_on: tuple[Any, ...]
    build: str | os.PathLike[str] | None


# Services a network fixture started for its test, by fixture name, until picked up.
_started: weakref.WeakKeyDictionary[Network, dict[str, Service | BaseException]] = weakref.WeakKeyDictionary()


def service_fixture(
    image: str,
    command: Command | None = None,
    *,
    alias: str | Sequence[str] | None = None,
    scope: str = "function",
    depends_on: Sequence[Any] = (),
    wait: WaitArgument = None,
    build: str | os.PathLike[str] | None = None,
    **run_kwargs: Any,
) -> Any:
    """Declare a service as a fixture; assign the result to the fixture's name.

    The service starts on a network of the same ``scope`` (a module-scoped service on a
    module-scoped network) once the services in ``depends_on`` (fixtures made by this
    function, or their names) have started; those are attached to its network too, with
    their aliases, so it reaches them by name. The function-scoped services a test
    requests start together. The service goes with its network. ``wait`` and
    ``run_kwargs`` go to :meth:`Network.run`. With ``build`` (a Dockerfile directory),
    ``image`` is built from it first, once per run. The fixture's value is the :class:`Service`.
    """
    __tracebackhide__ = hide_frames_of_own_errors
    if scope not in NETWORK_FIXTURES:
        raise ArgumentError(f"service_fixture scope {scope!r} is not one of {', '.join(NETWORK_FIXTURES)}")
    spec = ServiceDeclaration(
        ServiceSpec.of(image, command, alias=alias, wait=wait, **run_kwargs),
        scope,
        tuple(depends_on),
        build,
    )

    def start_service(request: pytest.FixtureRequest) -> Iterator[Service]:
        __tracebackhide__ = True
        network: Network = request.getfixturevalue(NETWORK_FIXTURES[scope])
        started = _started.get(network, {}).pop(request.fixturename or "", None)
        if isinstance(started, BaseException):
            raise shown(started)  # type: ignore[misc]  # not None: an error
        if started is None:
            _prepare(request, spec, network)
            started = network.start(spec.service)
        # The service goes with its network (removed, or kept with --dockernet-keep), which
        # removes all of its containers at once, off the test's critical path.
        yield started

    setattr(start_service, SPEC_ATTRIBUTE, spec)
    return pytest.fixture(scope=scope)(start_service)  # type: ignore[call-overload]


def compose_fixture(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    scope: str = "module",
    profiles: Sequence[str] = (),
    env_files: Sequence[str | os.PathLike[str]] = (),
) -> Any:
    """Declare a compose file as a fixture; its value is the started :class:`ComposeStack`.

    ``stack["name"]`` is the :class:`Service` of compose service ``name`` and
    ``stack.networks["name"]`` the plugin network standing for a compose network. ``path``
    may be a list of files, later ones overriding earlier ones (``docker compose -f a -f
    b``). Relative paths (of the files and of ``env_files``) are taken from pytest's
    rootdir; paths inside the file start at its own directory, as Compose's do.
    ``profiles`` turns on the services of those profiles. The file is read, and every
    problem of it reported at once, when the fixture is first used. Everything goes when
    the fixture's scope ends (kept with ``--dockernet-keep``).
    """
    __tracebackhide__ = hide_frames_of_own_errors
    if scope not in NETWORK_FIXTURES:
        raise ArgumentError(f"compose_fixture scope {scope!r} is not one of {', '.join(NETWORK_FIXTURES)}")
    if isinstance(profiles, str):
        raise ArgumentError(f"compose_fixture profiles must be a list of names, not the string {profiles!r}")
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)

    def start_stack(request: pytest.FixtureRequest) -> Iterator[compose.ComposeStack]:
        __tracebackhide__ = True
        manager = request.getfixturevalue("dockernet_manager")
        root = request.config.rootpath
        loaded = compose.load(
            [root / Path(p) for p in paths], profiles=profiles, env_files=[root / Path(e) for e in env_files]
        )
        stack = compose.start(
            loaded, manager, test=request.node.nodeid, hermetic=state_of(request.config).settings.hermetic
        )
        yield stack
        compose.release(stack, manager, later=True)
        warn_failures(manager.collect())

    return pytest.fixture(scope=scope)(start_stack)  # type: ignore[call-overload]


def _prepare(request: pytest.FixtureRequest, spec: ServiceDeclaration, network: Network) -> None:
    """Build the image if asked, and attach the services it depends on to ``network``."""
    if spec.build is not None:
        request.getfixturevalue("docker_build")(spec.build, spec.service.image)
    for dependency in spec.depends_on:
        needed: Service = request.getfixturevalue(fixture_name(dependency))
        if needed.network is not network:
            network.connect(needed, aliases=needed.aliases)


def start_group(request: pytest.FixtureRequest, network: Network) -> None:
    """Start the function-scoped service fixtures a test requests, together, on ``network``.

    Each level of ``depends_on`` starts concurrently once the level before it has. What
    failed is picked up, and raised, by its own fixture; what started is removed with the
    network. Groups that cannot be started safely this way are left to the fixtures.
    """
    specs = _function_services(request)
    if len(specs) < 2:
        return
    needs = {name: {fixture_name(d) for d in spec.depends_on} for name, spec in specs.items()}
    for name, spec in specs.items():
        outside = needs[name] - specs.keys()
        if any(_is_function_service(request, other) for other in outside):
            return  # a dependency the test did not request: its own fixture starts it, later
        _prepare(request, ServiceDeclaration(spec.service, spec.scope, tuple(outside), spec.build), network)
        needs[name] &= specs.keys()
    results: dict[str, Service | BaseException] = {}
    _started[network] = results
    while needs:
        level = [name for name, wanted in needs.items() if wanted <= results.keys()]
        if not level:
            break  # a cycle: pytest names it when the fixtures ask for each other
        _start_level(network, {name: (specs[name], needs.pop(name)) for name in level}, results)


def _start_level(
    network: Network,
    level: dict[str, tuple[ServiceDeclaration, set[str]]],
    results: dict[str, Service | BaseException],
) -> None:
    """Start one level of a group at once; ``level`` maps names to specs and their dependencies."""
    runnable = {}
    for name, (spec, wanted) in level.items():
        failed = sorted(other for other in wanted if isinstance(results.get(other), BaseException))
        if failed:
            results[name] = ServiceStartError(
                f"service fixture {name!r} was not started: {failed[0]!r}, which it depends on, failed to start"
            )
        else:
            runnable[name] = spec
    if not runnable:
        return
    names = list(runnable)
    futures = run_together(
        [partial(_start, network, runnable[name].service) for name in names], name="dockernet-group"
    )
    for name, future in zip(names, futures, strict=True):
        error = future.exception()
        results[name] = error if error is not None else future.result()


def _start(network: Network, spec: ServiceSpec, cancel: threading.Event) -> Service:
    return network.start(spec, cancel=cancel)


def _function_services(request: pytest.FixtureRequest) -> dict[str, ServiceDeclaration]:
    """The function-scoped service fixtures among those the test requests, by name."""
    found = {}
    for name in request.fixturenames:
        spec = declaration_of(request, name)
        if spec is not None and spec.scope == "function":
            found[name] = spec
    return found


def _is_function_service(request: pytest.FixtureRequest, name: str) -> bool:
    spec = declaration_of(request, name)
    return spec is not None and spec.scope == "function"


def declaration_of(request: pytest.FixtureRequest, name: str) -> ServiceDeclaration | None:
    # pytest has no public way from a fixture name to its function; the fixture info of
    # the test item (stable since pytest 3) has it. Without it, nothing is grouped.
    try:
        definitions = request.node._fixtureinfo.name2fixturedefs.get(name) or ()
    except AttributeError:
        return None
    for definition in reversed(definitions):
        spec = getattr(getattr(definition, "func", None), SPEC_ATTRIBUTE, None)
        if isinstance(spec, ServiceDeclaration):
            return spec
    return None


def fixture_name(dependency: Any) -> str:
    """The name ``dependency`` (a fixture object, or already a name) is registered under."""
    __tracebackhide__ = hide_frames_of_own_errors
    if isinstance(dependency, str):
        return dependency
    for module in list(sys.modules.values()):
        if not isinstance(module, types.ModuleType):
            continue
        for name, value in list(vars(module).items()):
            if value is dependency:
                return name
    raise ArgumentError(
        f"depends_on: cannot find where {dependency!r} is defined; define it at module level"
        " (in a test module or conftest.py), or pass its name as a string"
    )
