"""The module paths of 0.1 work for one more release: each warns and names its new home."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import pytest_dockernet
from pytest_dockernet.moved import MOVED_MODULES, MOVED_NAMES


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("pytest_dockernet.compose", "load", "pytest_dockernet.core.compose"),
        ("pytest_dockernet.cleanup", "find_labelled", "pytest_dockernet.engine.cleanup"),
        ("pytest_dockernet.images", "import_busybox", "pytest_dockernet.engine.images"),
        ("pytest_dockernet.lease", "take_lease", "pytest_dockernet.runs.lease"),
        ("pytest_dockernet.naming", "LABEL_RUN", "pytest_dockernet.engine.naming"),
        ("pytest_dockernet.engine", "connect", "pytest_dockernet.engine.connection"),
        ("pytest_dockernet.engine", "engine_errors", "pytest_dockernet.engine.connection"),
        ("pytest_dockernet.runs", "inventory", "pytest_dockernet.runs.sweeper"),
        ("pytest_dockernet.runs", "remove_run", "pytest_dockernet.runs.sweeper"),
    ],
)
def test_an_old_path_gives_the_same_object_with_a_warning_naming_the_new_one(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(
        DeprecationWarning, match=rf"^{old}\.{name} is now {new}\.{name}: import it from there"
    ):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_from_import_of_an_old_path_warns_at_the_users_line():
    # Compiled here (a type checker rightly finds no module at the old path).
    code = compile("from pytest_dockernet.cleanup import find_labelled", __file__, "exec")
    with pytest.warns(DeprecationWarning, match="pytest_dockernet.cleanup.find_labelled is now") as caught:
        exec(code, {})
    assert caught[0].filename == __file__


def test_every_old_module_path_imports_and_points_at_a_module_that_exists():
    for old, new in MOVED_MODULES.items():
        assert importlib.import_module(old).__doc__ == f"Moved to {new}; this path goes in 0.3."
        importlib.import_module(new)
    for new, names in MOVED_NAMES.values():
        target = importlib.import_module(new)
        assert all(hasattr(target, name) for name in names)


def test_the_public_partition_function_survives_the_old_paths():
    for old in MOVED_MODULES:
        importlib.import_module(old)
    assert callable(pytest_dockernet.partition)
    from pytest_dockernet import partition

    assert partition.__module__ == "pytest_dockernet.core.partition"


def test_an_old_path_knows_no_new_names_and_shadows_no_submodule():
    with pytest.raises(AttributeError, match=r"module 'pytest_dockernet\.images' has no attribute 'nothing'"):
        importlib.import_module("pytest_dockernet.images").nothing  # noqa: B018
    with pytest.raises(AttributeError, match=r"module 'pytest_dockernet\.engine' has no attribute 'plural'"):
        pytest_dockernet.engine.plural  # noqa: B018
    from pytest_dockernet.runs import reaper

    assert reaper.__name__ == "pytest_dockernet.runs.reaper"


def test_the_package_and_the_plugin_import_without_any_warning():
    # The package's own code never goes through an old path: -W error would fail here.
    code = (
        "import pytest_dockernet, pytest_dockernet.plugin, pytest_dockernet.runs.cli, pytest_dockernet.wait"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
