"""Services declared once as fixtures: ``redis = service_fixture("redis:7", alias="cache")``."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from .cleanup import warn_failures
from .service import Command, Service
from .wait import WaitArgument

# The network fixture each scope's services start on.
NETWORK_FIXTURES = {
    "function": "docker_network",
    "class": "dockernet_class_network",
    "module": "dockernet_module_network",
    "package": "dockernet_package_network",
    "session": "docker_worker_network",
}


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
    their aliases, so it reaches them by name. Teardown runs in reverse. ``wait`` and
    ``run_kwargs`` go to :meth:`Network.run`. With ``build`` (a Dockerfile directory),
    ``image`` is built from it first, once per run. The fixture's value is the :class:`Service`.
    """
    if scope not in NETWORK_FIXTURES:
        raise ValueError(f"service_fixture scope {scope!r} is not one of {', '.join(NETWORK_FIXTURES)}")
    spec = {"image": image, "command": command, "alias": alias, "wait": wait, **run_kwargs}

    def start_service(request: pytest.FixtureRequest) -> Iterator[Service]:
        __tracebackhide__ = True
        if build is not None:
            request.getfixturevalue("docker_build")(build, image)
        network = request.getfixturevalue(NETWORK_FIXTURES[scope])
        for dependency in depends_on:
            needed: Service = request.getfixturevalue(fixture_name(dependency))
            if needed.network is not network:
                network.connect(needed, aliases=needed.aliases)
        service: Service = network.run(**spec)
        yield service
        if network.identity.keep:
            return  # kept with its network, and counted there
        failure = service.remove()
        if failure:
            warn_failures([failure])

    start_service.__dockernet_service__ = True  # type: ignore[attr-defined]
    return pytest.fixture(scope=scope)(start_service)  # type: ignore[call-overload]


def fixture_name(dependency: Any) -> str:
    """The name ``dependency`` (a fixture object, or already a name) is registered under."""
    if isinstance(dependency, str):
        return dependency
    for module in list(sys.modules.values()):
        if not isinstance(module, types.ModuleType):
            continue
        for name, value in list(vars(module).items()):
            if value is dependency:
                return name
    raise LookupError(
        f"depends_on: cannot find where {dependency!r} is defined; define it at module level"
        " (in a test module or conftest.py), or pass its name as a string"
    )
