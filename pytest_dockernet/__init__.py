"""pytest-dockernet: isolated Docker networks per test and per xdist worker."""

from __future__ import annotations

from typing import Any

from . import wait
from .core.compose import ComposeError, ComposeStack
from .core.manager import NetworkManager
from .core.network import Network
from .core.partition import partition
from .core.service import ExecResult, Service
from .core.volumes import Volume, VolumeError
from .engine.cleanup import CleanupFailure
from .engine.naming import RunIdentity, new_run_id
from .errors import (
    CleanupWarning,
    DockernetError,
    DockernetWarning,
    EngineUnavailableError,
    ImageUnavailableError,
    InvalidAddressError,
    InvalidAliasError,
    JobTimeoutError,
    LockTimeoutError,
    NetworkError,
    PoolExhaustedError,
    RunEndedError,
    ServiceError,
    ServiceNotReadyError,
    ServiceStartError,
)
from .version import __version__


def __getattr__(name: str) -> Any:
    # service_fixture needs pytest; the core does not, so it is imported on first use.
    if name in ("service_fixture", "compose_fixture"):
        from .plugin import services as fixtures

        return getattr(fixtures, name)
    raise AttributeError(f"module 'pytest_dockernet' has no attribute {name!r}")


__all__ = [
    "CleanupFailure",
    "CleanupWarning",
    "ComposeError",
    "ComposeStack",
    "DockernetError",
    "DockernetWarning",
    "EngineUnavailableError",
    "ExecResult",
    "ImageUnavailableError",
    "InvalidAddressError",
    "InvalidAliasError",
    "JobTimeoutError",
    "LockTimeoutError",
    "Network",
    "NetworkError",
    "NetworkManager",
    "PoolExhaustedError",
    "RunEndedError",
    "RunIdentity",
    "Service",
    "ServiceError",
    "ServiceNotReadyError",
    "ServiceStartError",
    "Volume",
    "VolumeError",
    "__version__",
    "compose_fixture",
    "new_run_id",
    "partition",
    "service_fixture",
    "wait",
]
