"""A new user's first mistakes: one sentence naming the argument and what would be valid, and
none of the plugin's frames in the traceback."""

from __future__ import annotations

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
