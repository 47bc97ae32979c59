"""Exceptions and warnings raised by pytest-dockernet."""

from __future__ import annotations

from typing import Any


class DockernetError(Exception):
    """Base class of every error pytest-dockernet raises on purpose."""


class ArgumentError(DockernetError, TypeError, ValueError, LookupError):
    """An argument that cannot work, named with what would be valid.

    It is also a ``TypeError``, ``ValueError`` and ``LookupError``, so code that catches
    those (as Python's own mistakes are caught) catches it too.
    """


class EngineUnavailableError(DockernetError):
    """No Docker engine answers at the endpoint that was tried, or it stopped answering."""

    transient = False
    """Whether trying again may help (a connection reset), or not (a frozen engine)."""


class EngineError(DockernetError):
    """The engine answered a call with an error of its own (an HTTP 500, say); the message
    names the call and the engine's words."""

    transient = False
    """Whether trying again may help: the engine failed (5xx) rather than refused (4xx)."""


class PoolExhaustedError(DockernetError):
    """Every subnet of the configured pools overlaps a network or a route."""


class LockTimeoutError(DockernetError):
    """The subnet allocation lock could not be acquired in time."""


class StateDirError(DockernetError):
    """The state directory (lock files, run directories) cannot be created, written or read."""


class ImageUnavailableError(DockernetError):
    """An image is neither present on the engine nor pullable."""


class InvalidAliasError(DockernetError, ValueError):
    """A network alias is not a valid DNS name."""


class ServiceStartError(DockernetError):
    """A service container could not be created or started, or exited at once."""


class NetworkError(DockernetError):
    """The engine refused to create a network, or to connect or disconnect a service."""


class RunEndedError(DockernetError):
    """The run's root process is gone: an orphaned worker must not create anything more."""


class ServiceError(DockernetError):
    """The engine refused an operation on a service (a command in a stopped container, say)."""


class JobTimeoutError(ServiceError):
    """A one-shot job (:meth:`Network.run_job`) ran past its timeout and was killed.

    The message holds its output so far; :attr:`output` holds it too.
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class ServiceNotReadyError(DockernetError):
    """A service did not become ready within its wait's timeout.

    The message holds the service's last log lines; :attr:`service` names it, so a failed
    test's report does not show them a second time.
    """

    def __init__(self, message: str, service: str = "") -> None:
        super().__init__(message)
        self.service = service


class VolumeError(DockernetError):
    """The engine refused to create a volume."""


class ComposeError(DockernetError):
    """A compose file cannot be used as written: the message names the file, service and key."""


class FaultError(DockernetError):
    """A network fault could not be put in place or taken away (a kernel feature missing, a
    helper that failed); the message says which and what works instead."""


class InvalidAddressError(DockernetError, ValueError):
    """A static address is outside the network's subnet, is its gateway, or is taken."""


class DockernetWarning(UserWarning):
    """Base class of the warnings pytest-dockernet emits."""


class CleanupWarning(DockernetWarning):
    """A network or container could not be removed; it was left on the engine."""


# Shown as pytest_dockernet.X, the name users import them by (and shorter in pytest's
# one-line summaries, which cut the message at the terminal's width).
for _public in list(globals().values()):
    if isinstance(_public, type) and issubclass(_public, (DockernetError, DockernetWarning)):
        _public.__module__ = "pytest_dockernet"


def hide_frames_of_own_errors(excinfo: Any) -> bool:
    """A pytest ``__tracebackhide__`` filter: hide the plugin's frames for its own errors.

    The user then sees their test's line and one sentence; any other exception (a bug)
    keeps the full traceback.
    """
    return bool(excinfo.errisinstance(DockernetError))
