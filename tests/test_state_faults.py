"""An unusable state directory is one sentence naming the path and the option; the run goes on.

Real file systems in a mount namespace of the test's own (``unshare --mount``, as root): a
read-only tmpfs, a full one of 16 KiB, and no writable temporary directory at all. And a
state directory deleted under a running ``-n 2`` session, whose worker then crashes: its
replacement must find the run's reaper rather than start a second one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import TEST_IMAGE

needs_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare for mount namespaces"
)

USES_A_NETWORK = f"""
def test_one(docker_network):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="box")

def test_two(docker_network):
    pass
"""


def in_mount_namespace(
    pytester: pytest.Pytester, setup: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run a pytest session of ``pytester``'s files after ``setup`` (shell) in a mount namespace."""
    script = f"set -e\n{setup}\nexec {sys.executable} -m pytest -p no:cacheprovider -q -rE {' '.join(args)}"
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("XDG_RUNTIME_DIR", "TMPDIR", "TEMP", "TMP")
    }
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", **extra}


def assert_one_sentence(done: subprocess.CompletedProcess[str], sentence: str) -> None:
    text = done.stdout + done.stderr
    assert "INTERNALERROR" not in text, text
    assert "Traceback" not in text, text
    assert "OSError" not in text and "FileNotFoundError" not in text, text  # noqa: PT018
    assert "2 errors" in text, text
    assert text.count(sentence) >= 2, text  # once per test that needed it


@needs_namespaces
def test_a_read_only_state_directory(pytester, image, tmp_path):
    pytester.makepyfile(test_state=USES_A_NETWORK)
    where = tmp_path / "ro"
    where.mkdir()
    done = in_mount_namespace(
        pytester,
        f"mount -t tmpfs -o ro,mode=700 tmpfs {where}",
        clean_env(PYTEST_DOCKERNET_STATE_DIR=str(where)),
    )
    assert_one_sentence(
        done, "(Read-only file system): set PYTEST_DOCKERNET_STATE_DIR to a writable directory of your own"
    )
    assert str(where) in done.stdout


@needs_namespaces
def test_a_full_state_directory(pytester, image, tmp_path):
    pytester.makepyfile(test_state=USES_A_NETWORK)
    where = tmp_path / "full"
    where.mkdir()
    fill = f"mount -t tmpfs -o size=16k,mode=700 tmpfs {where}\ndd if=/dev/zero of={where}/fill bs=1k count=64 2>/dev/null || true"
    done = in_mount_namespace(pytester, fill, clean_env(PYTEST_DOCKERNET_STATE_DIR=str(where)))
    assert_one_sentence(
        done, "(No space left on device): set PYTEST_DOCKERNET_STATE_DIR to a writable directory"
    )


@needs_namespaces
def test_no_usable_temporary_directory_at_all(pytester, image, tmp_path):
    pytester.makepyfile(test_state=USES_A_NETWORK)
    # The session runs in a read-only view of its directory, with /tmp and /var/tmp read-only too.
    # Read-only views of the same directories (what lives there, a CI's venv, stays usable).
    setup = "\n".join(
        f"mount --bind {where} {where} && mount -o remount,bind,ro {where}"
        for where in ("/tmp", "/var/tmp", str(pytester.path))
        if os.path.isdir(where)
    )
    env = clean_env()
    env.pop("PYTEST_DOCKERNET_STATE_DIR", None)
    # -s: pytest's own output capture needs a temporary file before any plugin runs.
    done = in_mount_namespace(pytester, setup, env, "-s")
    assert_one_sentence(done, "no usable temporary directory for the plugin's state directory")


DELETED_THEN_CRASHED = """
import os
import shutil
import time

import psutil
import pytest


def reapers_of(run):
    return [
        process.pid
        for process in psutil.process_iter(["cmdline"])
        if "pytest_dockernet.runs.reaper" in (process.info["cmdline"] or []) and run in process.info["cmdline"]
    ]


def test_delete_the_state_directory_then_crash(dockernet_manager):
    shutil.rmtree(os.path.join(os.environ["PYTEST_DOCKERNET_STATE_DIR"], "runs"))
    os._exit(1)


@pytest.mark.parametrize("n", range(4))
def test_the_run_keeps_one_reaper(docker_network, dockernet_manager, n):
    time.sleep(0.2)
    assert len(reapers_of(dockernet_manager.identity.run)) == 1
"""


def test_a_state_directory_deleted_mid_run_gets_no_second_reaper(pytester, image, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_DOCKERNET_STATE_DIR", str(tmp_path / "state"))
    pytester.makepyfile(test_deleted=DELETED_THEN_CRASHED)
    # One worker: it crashes, and its replacement runs the other tests.
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "1")
    result.assert_outcomes(passed=4, failed=1)
    assert "replacing crashed worker" in result.stdout.str()
    assert "swept" not in result.stdout.str()
