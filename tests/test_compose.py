"""Compose files on isolated networks, started through the plugin: labelled, reaped, listed."""

from __future__ import annotations

import textwrap
import time

import pytest
from conftest import TEST_IMAGE

from pytest_dockernet import ComposeError
from pytest_dockernet.core.compose import load
from pytest_dockernet.engine.cleanup import find_labelled, find_labelled_volumes

COMPOSE = f"""
services:
  web:
    image: {TEST_IMAGE}
    command: ["sh", "-c", "echo hello > /www/index.html; exec httpd -f -p 8080 -h /www"]
    networks: [front]
    ports: ["8080"]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/"]
      interval: 100ms
      retries: 100
  migrate:
    image: {TEST_IMAGE}
    command: ["sh", "-c", "echo migrated > /data/state"]
    volumes: ["data:/data"]
    networks: [back]
  app:
    image: {TEST_IMAGE}
    command: ["sleep", "300"]
    environment: {{GREETING: hi}}
    env_file: app.env
    volumes: ["data:/data:ro"]
    depends_on:
      web: {{condition: service_healthy}}
      migrate: {{condition: service_completed_successfully}}
    networks:
      front: {{aliases: [client]}}
      back: {{aliases: [worker]}}
networks:
  front: {{}}
  back: {{internal: true}}
volumes:
  data: {{}}
"""

STACK_TESTS = """
import socket
from pytest_dockernet import compose_fixture

stack = compose_fixture("compose.yaml", scope="module")

def test_services_reach_each_other_by_name_and_alias(stack):
    app = stack["app"]
    assert app.exec(["wget", "-qO-", "http://web:8080/"]).output == "hello\\n"
    assert app.exec(["cat", "/data/state"]).output == "migrated\\n"
    assert app.exec(["sh", "-c", "echo $GREETING $FROM_FILE"]).output == "hi yes\\n"
    assert stack.jobs["migrate"].ok
    assert stack["web"].ip_on(stack.networks["back"]) is None, "web is on front only"
    assert app.ip_on(stack.networks["back"]) is not None
    assert stack.networks["back"].internal
    with socket.create_connection(stack["web"].address(8080), timeout=2):
        pass

def test_the_stack_is_shared_by_the_module(stack):
    assert "worker" in stack["app"].reload()["NetworkSettings"]["Networks"][stack.networks["back"].name]["Aliases"]
"""


def test_a_compose_file_runs_on_isolated_networks_and_leaves_nothing(pytester, image, docker_client):
    pytester.path.joinpath("compose.yaml").write_text(COMPOSE)
    pytester.path.joinpath("app.env").write_text("# from the env file\nFROM_FILE=yes\n")
    pytester.makepyfile(STACK_TESTS)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=2)
    run = result.stdout.str().split("run ")[-1][:8]
    containers, networks = find_labelled(docker_client, run)
    assert (containers, networks, find_labelled_volumes(docker_client, run)) == ([], [], [])


@pytest.mark.parametrize(
    ("compose", "message"),
    [
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    restart: always\n",
            "service 'web' uses 'restart', which pytest-dockernet does not support (supported: build, command,",
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    networks: [nowhere]\n",
            "service 'web' joins unknown network 'nowhere'",
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    depends_on: [db]\n",
            "service 'web' depends on unknown 'db'",
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    command: echo ${{HOME}}\n",
            "uses ${...} interpolation, which pytest-dockernet does not do",
        ),
        ("services:\n  web:\n    command: true\n", "service 'web' has neither 'image' nor 'build'"),
        ("services: [web]\n", "has no 'services:' mapping"),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\nnetworks:\n  n:\n    driver: overlay\n",
            "network 'n' uses 'driver'",
        ),
        (
            f"services:\n  a:\n    image: {TEST_IMAGE}\n    depends_on:\n      b: {{condition: service_magic}}\n"
            f"  b:\n    image: {TEST_IMAGE}\n",
            "waits for 'b' with condition 'service_magic'",
        ),
    ],
)
def test_what_is_not_supported_is_named_never_ignored(tmp_path, compose, message):
    path = tmp_path / "compose.yaml"
    path.write_text(textwrap.dedent(compose))
    with pytest.raises(ComposeError) as excinfo:
        load(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_a_failed_service_names_itself_and_the_stack_goes(pytester, image, docker_client):
    pytester.path.joinpath("compose.yaml").write_text(
        f"services:\n  ok:\n    image: {TEST_IMAGE}\n    command: [sleep, '300']\n"
        f"  migrate:\n    image: {TEST_IMAGE}\n    command: [sh, -c, 'echo boom; exit 3']\n"
        f"  app:\n    image: {TEST_IMAGE}\n    command: [sleep, '300']\n"
        "    depends_on:\n      migrate: {condition: service_completed_successfully}\n"
    )
    pytester.makepyfile(
        """
        from pytest_dockernet import compose_fixture
        stack = compose_fixture("compose.yaml")

        def test_never_runs(stack):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*compose service 'migrate' exited with status 3, but services wait for it*", "*boom*"]
    )
    run = result.stdout.str().split("run ")[-1][:8]
    assert find_labelled(docker_client, run) == ([], [])


def test_build_bind_mounts_and_published_addresses(pytester, image, docker_client):
    app = pytester.path / "app"
    app.mkdir()
    app.joinpath("Dockerfile").write_text(f"FROM {TEST_IMAGE}\nRUN echo built > /built\n")
    shared = pytester.path / "shared"
    shared.mkdir()
    shared.joinpath("note").write_text("from the host\n")
    pytester.path.joinpath("compose.yaml").write_text(
        "services:\n"
        "  app:\n"
        "    build: {context: ./app}\n"
        "    command: [sleep, '300']\n"
        "    volumes: ['./shared:/shared:ro']\n"
        "    ports: ['127.0.0.1::8080', '8081/udp']\n"
        "    networks:\n"
        "      default: {ipv4_address: '10.197.9.10'}\n"
    )
    pytester.makepyfile(
        """
        from pytest_dockernet import compose_fixture
        stack = compose_fixture("compose.yaml", scope="function")

        def test_built_and_mounted(stack):
            app = stack["app"]
            assert app.exec(["cat", "/built"]).output == "built\\n"
            assert app.exec(["cat", "/shared/note"]).output == "from the host\\n"
            assert str(app.ip) == "10.197.9.10"
            assert app.address(8080)[0] == "127.0.0.1"
            assert app.host_port(8081, "udp") > 0
        """
    )
    result = pytester.runpytest_subprocess("--dockernet-pool", "10.197.9.0/26")
    result.assert_outcomes(passed=1)


def test_extension_keys_and_underscored_names_are_accepted(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            x-common: &common
              image: {TEST_IMAGE}
            services:
              my_db:
                <<: *common
                x-note: the users' own
                networks:
                  back:
                    aliases: [main_db]
            networks:
              back:
                x-owner: team
            """
        )
    )
    loaded = load(path)
    assert list(loaded.services) == ["my_db"]
    assert loaded.services["my_db"].networks == {"back": {"aliases": ["main_db"]}}


def test_an_alias_bomb_is_read_in_bounded_time(tmp_path):
    # "Billion laughs": each level names the one before nine times, and the last value is
    # refused, so the check has to look at everything (it did, once per reference: hours).
    levels = ["a0: &a0 ['${HOME}']"]
    for level in range(1, 12):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        levels.append(f"a{level}: &a{level} [{refs}]")
    path = tmp_path / "compose.yaml"
    path.write_text(
        "x-bomb:\n"
        + "".join(f"  {line}\n" for line in levels)
        + f"services:\n  web:\n    image: {TEST_IMAGE}\n"
    )
    assert path.stat().st_size < 1000
    started = time.monotonic()
    with pytest.raises(ComposeError, match="interpolation"):
        load(path)
    assert time.monotonic() - started < 5


def test_a_huge_compose_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "compose.yaml"
    with path.open("wb") as file:
        file.truncate(50 * 1024 * 1024)
    with pytest.raises(ComposeError, match=r"has 52,428,800 bytes, more than the 4,194,304 a compose file"):
        load(path)
