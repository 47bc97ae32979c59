"""pytest-dockernet: isolated Docker networks per test and per xdist worker."""

from __future__ import annotations

from typing import Any

from . import moved, wait
from .core.compose import ComposeStack
from .core.faults import Fault
from .core.manager import NetworkManager
from .core.network import Network
from .core.partition import partition
from .core.service import ExecResult, Service
from .core.volumes import Volume
from .engine.cleanup import CleanupFailure
from .engine.naming import RunIdentity, new_run_id
from .errors import (
    ArgumentError,
    CleanupWarning,
    ComposeError,
    DockernetError,
    DockernetWarning,
    EngineError,
    EngineUnavailableError,
    FaultError,
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
    StateDirError,
    VolumeError,
)
from .version import __version__

moved.install()  # the module paths of 0.2 keep working for one release, with a warning


def __getattr__(name: str) -> Any:
    # service_fixture needs pytest; the core does not, so it is imported on first use.
    if name in ("service_fixture", "compose_fixture"):
        from .plugin import services

        return getattr(services, name)
    raise AttributeError(f"module 'pytest_dockernet' has no attribute {name!r}")


__all__ = [
    "ArgumentError",
    "CleanupFailure",
    "CleanupWarning",
    "ComposeError",
    "ComposeStack",
    "DockernetError",
    "DockernetWarning",
    "EngineError",
    "EngineUnavailableError",
    "ExecResult",
    "Fault",
    "FaultError",
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
    "StateDirError",
    "Volume",
    "VolumeError",
    "__version__",
    "compose_fixture",
    "new_run_id",
    "partition",
    "service_fixture",
    "wait",
]
