"""pytest-dockernet: isolated Docker networks per test and per xdist worker."""

from __future__ import annotations

from . import wait
from .cleanup import CleanupFailure
from .errors import (
    CleanupWarning,
    DockernetError,
    DockernetWarning,
    EngineUnavailableError,
    ImageUnavailableError,
    InvalidAliasError,
    LockTimeoutError,
    PoolExhaustedError,
    ServiceError,
    ServiceStartError,
)
from .manager import NetworkManager
from .naming import RunIdentity, new_run_id
from .network import Network
from .service import ExecResult, Service
from .wait import ServiceNotReadyError

__all__ = [
    "CleanupFailure",
    "CleanupWarning",
    "DockernetError",
    "DockernetWarning",
    "EngineUnavailableError",
    "ExecResult",
    "ImageUnavailableError",
    "InvalidAliasError",
    "LockTimeoutError",
    "Network",
    "NetworkManager",
    "PoolExhaustedError",
    "RunIdentity",
    "Service",
    "ServiceError",
    "ServiceNotReadyError",
    "ServiceStartError",
    "new_run_id",
    "wait",
]
