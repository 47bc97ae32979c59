"""Multi-service compose stacks started for real, queried from the test, and nothing left."""

from __future__ import annotations

import time
import urllib.request

import pytest
import redis
from conftest import ON_PODMAN, TEST_IMAGE
from imagekit import redis_image

from pytest_dockernet import ComposeError
from pytest_dockernet.core import compose
from pytest_dockernet.engine.cleanup import find_labelled, find_labelled_volumes

pytestmark = pytest.mark.usefixtures("image")

PING = "printf 'PING\\r\\n' | nc -w 1 127.0.0.1 6379 | grep -q PONG"

WEB_DB_CACHE = """
x-redis: &redis
  image: {redis}
  healthcheck:
    test: ["CMD-SHELL", "{ping}"]
    interval: 200ms
    retries: 100
services:
  db:
    <<: *redis
    ports: ["6379"]
  cache:
    <<: *redis
  migrate:
    image: {busybox}
    command: ["sh", "-c", "printf 'SET schema ${{SCHEMA:-3}}\\r\\n' | nc -w 2 db 6379 | grep -q OK"]
    depends_on:
      db: {{condition: service_healthy}}
  web:
    image: {busybox}
    command:
      - sh
      - -c
      - >-
        mkdir -p /www &&
        printf 'GET schema\\r\\n' | nc -w 2 db 6379 | tail -n 1 > /www/index.html &&
        printf 'PING\\r\\n' | nc -w 2 cache 6379 >> /www/index.html &&
        exec httpd -f -p 8080 -h /www
    ports: ["8080"]
    depends_on:
      migrate: {{condition: service_completed_successfully}}
      cache: {{condition: service_healthy}}
"""


def fetch_when_up(url: str) -> bytes:
    # web has no readiness check of its own (nothing waits for it): its httpd starts last.
    deadline = time.monotonic() + 20
    while True:
        try:
            return urllib.request.urlopen(url, timeout=5).read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_web_db_cache_and_a_migration_job(docker_client, manager, tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text(WEB_DB_CACHE.format(redis=redis_image(docker_client), busybox=TEST_IMAGE, ping=PING))
    stack = compose.start(compose.load(path), manager, test="stacks")
    try:
        assert stack.jobs["migrate"].ok
        page = fetch_when_up("http://{}:{}/".format(*stack["web"].address(8080)))
        assert page.decode().split() == ["3", "+PONG"], (
            "web read the migrated schema from db and reached cache"
        )
        host, port = stack["db"].address(6379)
        assert redis.Redis(host=host, port=port, socket_timeout=5).get("schema") == b"3"
    finally:
        compose.release(stack, manager)
    assert find_labelled(docker_client, manager.identity.run) == ([], [])


SECRETS_RESOURCES_RESTART = """
services:
  app:
    image: {busybox}
    command: ["sleep", "300"]
    secrets: [token]
    configs: [{{source: settings, target: /etc/app.conf}}]
    stop_grace_period: 7s
    container_name: the-app
    labels: {{com.example.role: app}}
    deploy:
      resources:
        limits: {{cpus: "0.5", memory: 64M, pids: 50}}
  flaky:
    image: {busybox}
    restart: on-failure
    volumes: ["state:/state", {{type: volume, target: /scratch}}]
    command: ["sh", "-c", "if [ -e /state/crashed ]; then exec sleep 300; fi; touch /state/crashed; exit 1"]
secrets:
  token: {{file: ./token.txt}}
configs:
  settings: {{file: ./app.conf}}
volumes:
  state: {{}}
"""


@pytest.mark.skipif(
    ON_PODMAN, reason="podman's restart policy is applied by its own restart loop; checked on Docker"
)
def test_secrets_configs_limits_and_a_service_that_crashes_once(docker_client, manager, tmp_path):
    (tmp_path / "token.txt").write_text("s3cret\n")
    (tmp_path / "app.conf").write_text("level = debug\n")
    path = tmp_path / "compose.yaml"
    path.write_text(SECRETS_RESOURCES_RESTART.format(busybox=TEST_IMAGE))
    stack = compose.start(compose.load(path), manager, test="stacks")
    try:
        app = stack["app"]
        assert app.exec(["cat", "/run/secrets/token"]).output == "s3cret\n"
        assert app.exec(["cat", "/etc/app.conf"]).output == "level = debug\n"
        assert not app.exec(["sh", "-c", "echo x > /run/secrets/token"]).ok, "secrets are read-only"
        attrs = app.reload()
        host = attrs["HostConfig"]
        assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (500_000_000, 64 * 1024 * 1024, 50)
        assert attrs["Config"]["StopTimeout"] == 7
        assert attrs["Config"]["Labels"]["com.example.role"] == "app"
        assert attrs["Config"]["Labels"]["pytest-dockernet.run"] == manager.identity.run, (
            "the run's labels too"
        )
        home = stack.networks["default"]
        assert "the-app" in attrs["NetworkSettings"]["Networks"][home.name]["Aliases"]
        deadline = time.monotonic() + 30
        while True:
            state = stack["flaky"].reload()
            if state["RestartCount"] >= 1 and state["State"]["Running"]:
                break
            assert time.monotonic() < deadline, state["State"]
            time.sleep(0.2)
        assert stack["flaky"].exec(["ls", "/state"]).output == "crashed\n"
    finally:
        compose.release(stack, manager)
    assert find_labelled(docker_client, manager.identity.run) == ([], [])
    assert find_labelled_volumes(docker_client, manager.identity.run) == [], (
        "named and anonymous volumes went"
    )


def test_static_addresses_choose_the_subnet_or_are_refused_naming_the_pool(docker_client, manager, tmp_path):
    path = tmp_path / "compose.yaml"
    pool = manager.allocator.pools[0]
    subnets = list(pool.subnets(new_prefix=manager.allocator.subnet_size))
    inside = subnets[-3]  # far from where the pool's networks are taken first
    primary, replica = list(inside.hosts())[9:11]
    path.write_text(
        f"services:\n"
        f"  primary:\n    image: {TEST_IMAGE}\n    command: [sleep, '300']\n"
        f"    networks: {{replication: {{ipv4_address: {primary}}}}}\n"
        f"  replica:\n    image: {TEST_IMAGE}\n    command: [sleep, '300']\n"
        f"    networks: {{replication: {{ipv4_address: {replica}}}}}\n"
        "networks:\n  replication: {}\n"
    )
    stack = compose.start(compose.load(path), manager, test="stacks")
    try:
        assert stack.networks["replication"].subnet == inside
        assert (str(stack["primary"].ip), str(stack["replica"].ip)) == (str(primary), str(replica))
        assert stack["replica"].exec(["ping", "-c", "1", "-W", "2", "primary"]).ok
    finally:
        compose.release(stack, manager)
    path.write_text(
        f"services:\n  a:\n    image: {TEST_IMAGE}\n    networks: {{n: {{ipv4_address: 192.0.2.7}}}}\n"
        f"  b:\n    image: {TEST_IMAGE}\n    networks: {{n: {{ipv4_address: {next(inside.hosts())}}}}}\n"
        "networks:\n  n: {}\n"
    )
    with pytest.raises(ComposeError) as caught:
        compose.start(compose.load(path), manager, test="stacks")
    message = str(caught.value)
    assert f"ipv4_address 192.0.2.7 is outside the subnet pool {pool}" in message
    assert find_labelled(docker_client, manager.identity.run) == ([], []), "nothing was made"


HERMETIC_AND_REPORT = """
from pytest_dockernet import compose_fixture

stack = compose_fixture("compose.yaml", scope="function")

def test_unknown_names_never_leave(stack):
    app = stack["app"]
    assert app.reload()["HostConfig"]["Dns"] == ["127.0.0.1"]
    assert not app.exec(["nslookup", "not-a-service.invalid"]).ok

def test_a_failure_shows_the_stack(stack):
    assert False, "failing on purpose"
"""


@pytest.mark.skipif(ON_PODMAN, reason="hermetic networks are refused on podman (README, Podman)")
def test_a_stack_follows_the_hermetic_setting_and_shows_in_a_failed_report(pytester, docker_client):
    pytester.path.joinpath("compose.yaml").write_text(
        f"services:\n  app:\n    image: {TEST_IMAGE}\n    command: [sh, -c, 'echo app-started; exec sleep 300']\n"
    )
    pytester.makepyfile(HERMETIC_AND_REPORT)
    result = pytester.runpytest_subprocess("--dockernet-hermetic")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*dockernet: network*", "*app-started*"])
    run = result.stdout.str().split("run ")[-1][:8]
    assert find_labelled(docker_client, run) == ([], [])


def test_addresses_that_cannot_share_one_subnet_or_take_its_gateway_are_refused(manager, tmp_path):
    subnets = list(manager.allocator.pools[0].subnets(new_prefix=manager.allocator.subnet_size))
    gateway, other_block = next(subnets[-3].hosts()), list(subnets[-2].hosts())[5]
    path = tmp_path / "compose.yaml"
    for first, second, expected in (
        (list(subnets[-3].hosts())[5], other_block, f"do not fit in one /{manager.allocator.subnet_size}"),
        (gateway, list(subnets[-3].hosts())[5], f"ipv4_address {gateway} is its subnet's gateway"),
    ):
        path.write_text(
            f"services:\n  a:\n    image: {TEST_IMAGE}\n    networks: {{n: {{ipv4_address: {first}}}}}\n"
            f"  b:\n    image: {TEST_IMAGE}\n    networks: {{n: {{ipv4_address: {second}}}}}\n"
            "networks:\n  n: {}\n"
        )
        with pytest.raises(ComposeError, match=expected):
            compose.start(compose.load(path), manager, test="stacks")


def test_a_failed_test_shows_its_stack_on_any_engine(pytester, docker_client):
    pytester.path.joinpath("compose.yaml").write_text(
        f"services:\n  app:\n    image: {TEST_IMAGE}\n    command: [sh, -c, 'echo app-started; exec sleep 300']\n"
    )
    pytester.makepyfile(
        'from pytest_dockernet import compose_fixture\nstack = compose_fixture("compose.yaml")\n'
        "def test_fails(stack):\n    assert False\n"
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*dockernet: network*", "*app-started*"])
    run = result.stdout.str().split("run ")[-1][:8]
    assert find_labelled(docker_client, run) == ([], [])
