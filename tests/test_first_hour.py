"""A new user's first mistakes: one sentence naming the argument and what would be valid, and
none of the plugin's frames in the traceback."""

from __future__ import annotations

from pathlib import Path

from conftest import TEST_IMAGE

MISTAKES = f"""
from pytest_dockernet import wait

def test_wait_not_called(docker_network):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "30"], wait=wait.port)

def test_wait_as_a_string(docker_network):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "30"], wait="port")

def test_ports_as_a_list(docker_network):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "30"], ports=[8080])

def test_an_unknown_alias(docker_network):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "30"], alias="db")
    docker_network.cut("db", "nobody")

def test_default_command_that_exits(docker_network):
    docker_network.run({TEST_IMAGE!r}, min_uptime=3)  # busybox runs sh, which ends at once
"""


def test_argument_mistakes_are_one_sentence_without_plugin_frames(pytester):
    pytester.makepyfile(test_mistakes=MISTAKES)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines_random(
        [
            "E *ArgumentError: wait= takes a strategy of pytest_dockernet.wait*(call it: wait.port(6379), not wait.port)",
            "E *ArgumentError: wait= takes a strategy of pytest_dockernet.wait*not 'port'",
            "E *ArgumentError: ports= takes a dict of container port to host port*not ?8080?",
            "E *ArgumentError: no service 'nobody' on network * (its aliases: db)",
            "E *ServiceStartError: *exited at once with status 0; the image's default command finished:"
            " give a command that keeps running, such as ?'sleep', 'infinity'?, or use run_job()*",
        ]
    )
    output = result.stdout.str()
    assert "pytest_dockernet/" not in output.replace("pytest_dockernet.", ""), (
        "no frame of the plugin is shown"
    )


def test_argument_errors_are_still_the_builtin_errors():
    import pytest

    from pytest_dockernet import ArgumentError, DockernetError, wait

    with pytest.raises(TypeError):
        wait.all_of("port")  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ValueError, match="needs at least one strategy"):
        wait.all_of()
    assert issubclass(ArgumentError, (DockernetError, TypeError, ValueError, LookupError))


def test_a_misspelt_variable_is_named_with_the_closest_real_one(pytester, monkeypatch):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    monkeypatch.setenv("PYTEST_DOCKERNET_KEPP", "1")
    result = pytester.runpytest_subprocess()
    assert result.ret == 4  # a usage error
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-dockernet: environment variable PYTEST_DOCKERNET_KEPP is not a pytest-dockernet"
         " setting; did you mean PYTEST_DOCKERNET_KEEP? *"]
    )  # fmt: skip
    assert result.stderr.str().count("PYTEST_DOCKERNET_KEPP") == 1, "once"


def test_a_wait_on_the_wrong_port_says_what_does_listen(manager, image):
    import pytest

    from pytest_dockernet import ServiceNotReadyError, wait

    with manager.create_network() as net, pytest.raises(ServiceNotReadyError) as caught:
        net.run(image, ["httpd", "-f", "-p", "8080"], wait=wait.port(8081, timeout=1))
    assert "waiting for a process to listen on TCP port 8081 (it listens on TCP 8080)" in str(caught.value)


PROBE = """
from pytest_dockernet.engine.connection import connect
try:
    connect()
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_socket_this_user_may_not_open_says_so_with_the_fixes(tmp_path_factory):
    # For real: the engine's socket is root:docker 0660, and the probe runs as nobody, with
    # the system's Python 3 and a copy of the packages it imports in a directory nobody may read.
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    import pytest

    python = "/usr/bin/python3"
    socket_path = "/var/run/docker.sock"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(python):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to run a probe as nobody")
    if not os.path.exists(socket_path) or os.stat(socket_path).st_mode & 0o007:
        pytest.skip(f"{socket_path} is missing or open to everyone")
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    if version.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip("the system's Python 3 is not this Python's version (compiled packages would not load)")
    import docker  # noqa: F401 - what the probe imports, so that its packages can be copied

    import pytest_dockernet.engine.connection  # noqa: F401

    root = Path(tempfile.mkdtemp(prefix="dockernet-probe-", dir="/tmp"))
    try:
        os.chmod(root, 0o755)
        tops = {name.split(".")[0] for name in sys.modules}
        for top in sorted(tops):
            module = sys.modules.get(top)
            origin = getattr(module, "__file__", None)
            if not origin or ("site-packages" not in origin and top != "pytest_dockernet"):
                continue
            source = Path(origin).parent if Path(origin).name == "__init__.py" else Path(origin)
            target = root / source.name
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": "/tmp",
                "PYTHONPATH": str(root),
                "DOCKER_HOST": f"unix://{socket_path}",
            },
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert done.stdout.strip() == (
        f"EngineUnavailableError the Docker engine's socket unix://{socket_path} may not be opened by this"
        " user (permission denied); add the user to the docker group ('sudo usermod -aG docker $USER',"
        " then log in again), use rootless Docker, or set DOCKER_HOST to an engine this user may use"
    ), done.stdout + done.stderr
