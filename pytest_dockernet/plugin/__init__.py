"""The pytest glue: the only floor that imports pytest. pytest loads it as the ``dockernet`` plugin.

The hooks live in :mod:`.hooks`, the fixtures in :mod:`.fixtures` and the declarative
service fixtures in :mod:`.services`; this module is what the ``pytest11`` entry point
names, so it holds them all.
"""

from __future__ import annotations

from .fixtures import (
    docker_build,
    docker_client,
    docker_network,
    docker_network_factory,
    docker_volume,
    docker_worker_network,
    dockernet_class_network,
    dockernet_manager,
    dockernet_module_network,
    dockernet_package_network,
)
from .hooks import (
    pytest_addoption,
    pytest_configure,
    pytest_runtest_call,
    pytest_runtest_makereport,
    pytest_runtest_protocol,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

__all__ = [
    "docker_build",
    "docker_client",
    "docker_network",
    "docker_network_factory",
    "docker_volume",
    "docker_worker_network",
    "dockernet_class_network",
    "dockernet_manager",
    "dockernet_module_network",
    "dockernet_package_network",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "pytest_runtest_protocol",
    "pytest_runtest_teardown",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
]
