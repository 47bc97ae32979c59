"""The module paths of 0.1, kept for one more release: each still works, warns, and names its new home.

0.2 put the flat modules into four folders (README.rst, Architecture; CHANGELOG.rst lists
every move). ``import pytest_dockernet.images`` and ``from pytest_dockernet.cleanup import
find_labelled`` go on working through :data:`MOVED_MODULES`: the old name is a small module
whose attributes are those of the new one, each handed out with a ``DeprecationWarning``.
``pytest_dockernet.engine`` and ``pytest_dockernet.runs`` were modules and are now folders;
the names the old modules had are forwarded the same way (:data:`MOVED_NAMES`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

REMOVED_IN = "0.3"

MOVED_MODULES = {
    f"pytest_dockernet.{old}": f"pytest_dockernet.{new}"
    for old, new in {
        "addresses": "engine.addresses",
        "cleanup": "engine.cleanup",
        "images": "engine.images",
        "locks": "engine.locks",
        "naming": "engine.naming",
        "podman": "engine.podman",
        "processes": "engine.processes",
        "statedir": "engine.statedir",
        "subnets": "engine.subnets",
        "compose": "core.compose",
        "manager": "core.manager",
        "network": "core.network",
        "service": "core.service",
        "volumes": "core.volumes",
        "cli": "runs.cli",
        "lease": "runs.lease",
        "reaper": "runs.reaper",
        "rundir": "runs.rundir",
        "fixtures": "plugin.services",
        "report": "plugin.report",
        "settings": "plugin.settings",
    }.items()
}
"""Old module path -> new module path. ``pytest_dockernet.partition`` is not among them: it
is the public function of that name, which a module loaded at that path would replace."""

MOVED_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pytest_dockernet.engine": (
        "pytest_dockernet.engine.connection",
        (
            "DEFAULT_ENDPOINT",
            "DEFAULT_TIMEOUT",
            "HOW_TO_START",
            "client",
            "connect",
            "endpoint",
            "engine_errors",
            "engine_host",
            "engine_key",
            "is_local",
            "readable_reason",
            "without_proxy_lookups",
        ),
    ),
    "pytest_dockernet.runs": (
        "pytest_dockernet.runs.sweeper",
        (
            "RunInfo",
            "SweepReport",
            "dead_runs",
            "inventory",
            "processes_in",
            "remove_run",
            "sweep",
            "sweep_dead_runs",
        ),
    ),
}
"""Module that became a folder -> (where its names live now, those names)."""


def forwarder(old: str, new: str, names: Sequence[str] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` that hands out ``new``'s attribute ``name`` with a warning.

    ``names`` limits it to those names (a folder's own submodules must not be shadowed).
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__") or (names is not None and name not in names):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        target = importlib.import_module(new)
        if not hasattr(target, name):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} is now {new}.{name}: import it from there ({old} goes in {REMOVED_IN})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(target, name)

    return __getattr__


class _OldPathLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__doc__ = f"Moved to {self.new}; this path goes in {REMOVED_IN}."
        module.__getattr__ = forwarder(module.__name__, self.new)  # type: ignore[method-assign]


class OldPathFinder(importlib.abc.MetaPathFinder):
    """Finds the old module paths of :data:`MOVED_MODULES` (after every other finder)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _OldPathLoader(new))


def install() -> None:
    """Let the old module paths import (once per interpreter)."""
    if not any(isinstance(finder, OldPathFinder) for finder in sys.meta_path):
        sys.meta_path.append(OldPathFinder())
