"""Run identity, resource names and labels.

Docker accepts several networks with one name (the drone lesson), so every name the
plugin makes carries a run id that is random per pytest run and a worker id that is
unique within the run; resources are then always addressed by their engine ID.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import secrets
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import InvalidAliasError, hide_frames_of_own_errors
from .processes import ProcessRef, format_start, start_time

LABEL_PREFIX = "pytest-dockernet"
LABEL_RUN = f"{LABEL_PREFIX}.run"
LABEL_WORKER = f"{LABEL_PREFIX}.worker"
LABEL_PID = f"{LABEL_PREFIX}.pid"
LABEL_PID_START = f"{LABEL_PREFIX}.pid-start"
LABEL_ROOT_PID = f"{LABEL_PREFIX}.root-pid"
LABEL_ROOT_START = f"{LABEL_PREFIX}.root-start"
LABEL_HOST = f"{LABEL_PREFIX}.host"
LABEL_TEST = f"{LABEL_PREFIX}.test"
LABEL_KEEP = f"{LABEL_PREFIX}.keep"

HOST_ENV = "PYTEST_DOCKERNET_HOST"

Labels = Mapping[str, str] | Sequence[str]
"""Labels as docker-py takes them: a dict, or a list of keys (with empty values)."""
DEFAULT_PREFIX = "dockernet"
MAX_PREFIX_LENGTH = 16
# Container names double as DNS names on the network: keep them within one DNS label.
MAX_NAME_LENGTH = 63
MAX_LABEL_VALUE_LENGTH = 256

_PREFIX_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Docker and compose take "_" too (a compose service named my_db is reached as my_db).
_DNS_LABEL_RE = re.compile(r"^(?![-_])[a-zA-Z0-9_-]{1,63}(?<![-_])$")
_UNSAFE_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]+")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def this_host() -> str:
    """This host's name as labels carry it: ``$PYTEST_DOCKERNET_HOST``, else the host name.

    Liveness is judged only for runs of this host; set the variable where several machines
    or containers share one host name and one engine.
    """
    return sanitize_label_value(os.environ.get(HOST_ENV) or socket.gethostname())


def normalize_labels(labels: Labels | None) -> dict[str, str]:
    """Labels as docker-py takes them (a dict, or a list of keys with empty values) as a dict."""
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        return {str(key): str(value) for key, value in labels.items()}
    if isinstance(labels, str):
        return {labels: ""}
    return {str(key): "" for key in labels}


def new_run_id() -> str:
    """A short random id: two runs started in the same second never share it."""
    return secrets.token_hex(4)


def check_prefix(prefix: str) -> str | None:
    """Return why ``prefix`` cannot start resource names, or None when it can."""
    if not prefix:
        return "must not be empty"
    if len(prefix) > MAX_PREFIX_LENGTH:
        return f"must be at most {MAX_PREFIX_LENGTH} characters"
    if not _PREFIX_RE.match(prefix):
        return "must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
    return None


def sanitize_name_part(text: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """Make ``text`` safe inside a Docker object name.

    Unsafe characters collapse to ``-``; text that had to change, or is too long,
    gets a short hash of the original so that two different inputs stay different.
    """
    cleaned = _UNSAFE_NAME_CHARS.sub("-", text).strip("-.") or "x"
    if cleaned == text and len(cleaned) <= max_length:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[: max(1, max_length - 9)]}-{digest}"


def sanitize_label_value(text: str) -> str:
    """Strip control characters from ``text`` and bound its length."""
    cleaned = _CONTROL_CHARS.sub("?", text)
    if len(cleaned) <= MAX_LABEL_VALUE_LENGTH:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[: MAX_LABEL_VALUE_LENGTH - 12]}...{digest}"


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid DNS name, else raise :class:`InvalidAliasError`."""
    __tracebackhide__ = hide_frames_of_own_errors
    if not isinstance(alias, str):
        raise InvalidAliasError(f"alias {alias!r} must be a string, not {type(alias).__name__}")
    labels = alias.split(".")
    if len(alias) > 253 or not all(_DNS_LABEL_RE.match(label) for label in labels):
        raise InvalidAliasError(
            f"alias {alias!r} is not a valid DNS name: use labels of 1-63 letters, digits,"
            " '-' and '_' (neither at either end), separated by dots"
        )
    return alias


def normalize_aliases(alias: str | Sequence[str] | None) -> list[str]:
    """Turn the ``alias`` argument (one name, several, or None) into a validated list."""
    __tracebackhide__ = hide_frames_of_own_errors
    if alias is None:
        return []
    if isinstance(alias, str):
        return [validate_alias(alias)]
    return [validate_alias(item) for item in alias]


@dataclass
class RunIdentity:
    """Who creates resources: the run, the xdist worker and the process.

    ``run`` is shared by every xdist worker of one pytest run; ``worker`` is the xdist
    worker id (``gw0``...) or ``main``; ``root_pid`` is the run's first process (the xdist
    controller), which the reaper watches. ``started`` and ``root_started`` are those
    processes' start times (read from the system when not given), so that a recycled pid
    is never taken for them. ``extra_labels`` go on every resource (the plugin's own win).
    The counter makes names unique in a process.
    """

    run: str
    worker: str = "main"
    prefix: str = DEFAULT_PREFIX
    pid: int = field(default_factory=os.getpid)
    root_pid: int = 0
    host: str = field(default_factory=this_host)
    keep: bool = False
    started: float | None = None
    root_started: float | None = None
    extra_labels: dict[str, str] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = start_time(self.pid)
        if not self.root_pid or self.root_pid == self.pid:
            self.root_pid, self.root_started = self.pid, self.started
        elif self.root_started is None:
            self.root_started = start_time(self.root_pid)

    @property
    def process(self) -> ProcessRef:
        """The process that creates resources."""
        return ProcessRef(self.pid, self.started)

    @property
    def root(self) -> ProcessRef:
        """The run's root process (the xdist controller)."""
        return ProcessRef(self.root_pid, self.root_started)

    def next_network_name(self) -> str:
        """A network name that no other run, worker or call has produced."""
        return self._next_name("")

    def next_volume_name(self) -> str:
        """A volume name that no other run, worker or call has produced."""
        return self._next_name("v")

    def _next_name(self, kind: str) -> str:
        with self._lock:
            number = next(self._counter)
        worker = sanitize_name_part(self.worker, 16)
        return f"{self.prefix}-{self.run}-{worker}-{kind}{number}"

    def labels(self, test: str | None = None, extra: Labels | None = None) -> dict[str, str]:
        """The labels every resource of this identity carries (``extra`` cannot override them)."""
        labels = {**self.extra_labels, **normalize_labels(extra)}
        labels.update(
            {
                LABEL_RUN: self.run,
                LABEL_WORKER: self.worker,
                LABEL_PID: str(self.pid),
                LABEL_PID_START: format_start(self.started),
                LABEL_ROOT_PID: str(self.root_pid),
                LABEL_ROOT_START: format_start(self.root_started),
                LABEL_HOST: sanitize_label_value(self.host),
            }
        )
        if test is not None:
            labels[LABEL_TEST] = sanitize_label_value(test)
        if self.keep:
            labels[LABEL_KEEP] = "1"
        return labels


def container_name(network_name: str, suffix: str) -> str:
    """``{network name}-{suffix}``, sanitized and within Docker's limits."""
    budget = MAX_NAME_LENGTH - len(network_name) - 1
    return f"{network_name}-{sanitize_name_part(suffix, max(budget, 10))}"
