"""pytest-dockernet: isolated Docker networks per test and per xdist worker."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0.dev0"

from . import wait
from .cleanup import CleanupFailure
from .compose import ComposeError, ComposeStack
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
from .manager import NetworkManager
from .naming import RunIdentity, new_run_id
from .network import Network
from .partition import partition
from .service import ExecResult, Service
from .volumes import Volume, VolumeError


def __getattr__(name: str) -> Any:
    # service_fixture needs pytest; the core does not, so it is imported on first use.
    if name in ("service_fixture", "compose_fixture"):
        from . import fixtures

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
