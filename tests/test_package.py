"""The package as users get it: the sdist holds and runs its own tests; metadata and version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

import pytest_dockernet

ROOT = Path(__file__).resolve().parent.parent
BUILD_SDIST = "from setuptools.build_meta import build_sdist; import sys; print(build_sdist(sys.argv[1]))"


SKIP = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", ".*_cache", "dist", "build")


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # setuptools' own backend, in this environment: nothing is fetched. From a copy of the
    # tree, since building writes an egg-info beside the sources.
    tree = tmp_path_factory.mktemp("tree") / "pytest-dockernet"
    shutil.copytree(ROOT, tree, ignore=SKIP)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-c", BUILD_SDIST, str(out)], cwd=tree, capture_output=True, text=True, check=True
    )
    return out / done.stdout.strip().splitlines()[-1]


def test_the_sdist_ships_what_its_tests_need(sdist):
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    expected = {
        "LICENSE",
        "CHANGELOG.rst",
        "tox.ini",
        "setup.cfg",
        "pyproject.toml",
        "tests/conftest.py",
        "tests/imagekit.py",
        "tests/test_plugin.py",
        "examples/conftest.py",
        "examples/test_demo.py",
        "pytest_dockernet/py.typed",
    }
    assert expected <= names, sorted(expected - names)


def test_the_sdist_installed_in_a_fresh_venv_collects_its_suite(sdist, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The package from the sdist, without fetching anything: its dependencies are seen
    # through a .pth line to this environment's site-packages (whose editable install of
    # the package is not activated that way).
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(fresh_site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(sdist),
        ],
        check=True,
        capture_output=True,
    )
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    unpacked = next((tmp_path / "src").iterdir())
    where = subprocess.run(
        [str(python), "-c", "import pytest_dockernet; print(pytest_dockernet.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(fresh_site), where
    # The wheel built from the sdist ships every floor of the package (a bare
    # ``packages = pytest_dockernet`` would ship the root alone), and the entry points
    # users know are unchanged.
    installed = Path(where.strip()).parent
    shipped = {path.relative_to(installed).as_posix() for path in installed.rglob("*") if path.is_file()}
    source = ROOT / "pytest_dockernet"
    expected = {path.relative_to(source).as_posix() for path in source.rglob("*.py")} | {"py.typed"}
    assert expected <= shipped, sorted(expected - shipped)
    entry_points = subprocess.run(
        [
            str(python),
            "-c",
            "from importlib.metadata import entry_points as e;"
            "print(*sorted(f'{p.group} {p.name} {p.value}' for g in ('pytest11', 'console_scripts')"
            " for p in e(group=g) if 'dockernet' in p.value), sep='\\n')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert entry_points == [
        "console_scripts pytest-dockernet pytest_dockernet.runs.cli:main",
        "pytest11 dockernet pytest_dockernet.plugin",
    ]
    # A suite of its own: not this suite's id, label or host name (its leak check would
    # count this suite's resources in flight).
    own = {"DOCKERNET_SUITE_ID", "PYTEST_DOCKERNET_LABELS", "PYTEST_DOCKERNET_HOST"}
    collected = subprocess.run(
        # -I: the unpacked sources in the working directory must not shadow the install.
        [str(python), "-I", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        env={key: value for key, value in os.environ.items() if key not in own},
    )
    assert collected.returncode == 0, collected.stdout[-3000:]
    assert "error" not in collected.stdout.lower().splitlines()[-1], collected.stdout[-3000:]
    assert int(collected.stdout.splitlines()[-1].split()[0]) > 200


def test_version_everywhere():
    assert pytest_dockernet.__version__
    done = subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"pytest-dockernet {pytest_dockernet.__version__}"
    from importlib.metadata import metadata, version

    assert version("pytest-dockernet") == pytest_dockernet.__version__
    meta = metadata("pytest-dockernet")
    assert "Framework :: Pytest" in (meta.get_all("Classifier") or [])
    assert "requests" in " ".join(meta.get_all("Requires-Dist") or [])
