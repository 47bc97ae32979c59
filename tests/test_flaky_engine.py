"""A flaky engine: HTTP 500s, reset connections and stalls, each one sentence naming the call.

The engine stands behind a proxy of the suite's own (tests/faulty_proxy.py) that fails
chosen requests; the engine itself is never touched. After each fault the proxy heals and
nothing of the test is left.
"""

from __future__ import annotations

import docker
import pytest
from conftest import SUITE_LABELS, TEST_IMAGE, core_identity, wait_until_gone
from faulty_proxy import FaultyProxy, faulty_proxy
from test_plugin import run_id

from pytest_dockernet import EngineError, EngineUnavailableError, NetworkManager, wait
from pytest_dockernet.engine.cleanup import find_labelled

SLEEP = ["sleep", "300"]
ID = r"[0-9a-f]{12,64}"


@pytest.fixture
def proxy(tmp_path, image):
    with faulty_proxy(tmp_path) as proxy:
        yield proxy


@pytest.fixture
def flaky(proxy: FaultyProxy, docker_client):
    """A manager whose engine calls go through the proxy; everything it made is gone afterwards."""
    client = docker.DockerClient(base_url=proxy.url, timeout=30)
    manager = NetworkManager.for_client(client, core_identity("flaky"))
    yield manager
    proxy.heal()
    assert manager.close() == []
    containers, networks = find_labelled(docker_client, manager.identity.run)
    assert containers == [] and networks == []  # noqa: PT018
    client.close()


def test_an_exec_whose_result_the_engine_fails_to_give_is_one_sentence(flaky, proxy):
    with flaky.create_network() as net:
        box = net.run(TEST_IMAGE, SLEEP, alias="box")
        proxy.inject(rf"GET /v[\d.]+/exec/{ID}/json")
        with pytest.raises(EngineError) as caught:
            box.exec(["true"])
        message = str(caught.value)
        assert f"failed while running ['true'] in container {box.name}" in message
        assert "injected fault: the engine failed this call (HTTP 500)" in message
        assert box.exec(["true"]).ok  # healed: the next call works


def test_a_wait_whose_reload_fails_removes_its_container(flaky, proxy, docker_client):
    with flaky.create_network() as net:
        # The start's own inspect passes; the wait's first one fails.
        proxy.inject(rf"GET /v[\d.]+/containers/{ID}/json", skip=1)
        with pytest.raises(
            EngineError, match=r"failed while starting a container from .* on network .*HTTP 500"
        ):
            net.run(TEST_IMAGE, SLEEP, alias="waited", wait=wait.port(9, timeout=30))
        assert net.services == []
        assert find_labelled(docker_client, flaky.identity.run)[0] == []


def test_a_job_whose_wait_or_kill_fails_is_one_sentence_and_goes(flaky, proxy, docker_client):
    with flaky.create_network() as net:
        proxy.inject(rf"POST /v[\d.]+/containers/{ID}/wait")
        with pytest.raises(EngineError, match=r"failed while running a job from .*HTTP 500"):
            net.run_job(TEST_IMAGE, ["true"])
        proxy.inject(rf"POST /v[\d.]+/containers/{ID}/kill")
        with pytest.raises(EngineError, match=r"failed while running a job from .*HTTP 500"):
            net.run_job(TEST_IMAGE, SLEEP, timeout=1)
        assert find_labelled(docker_client, flaky.identity.run)[0] == []


def test_a_reset_connection_is_one_sentence_that_says_so(flaky, proxy):
    with flaky.create_network() as net:
        box = net.run(TEST_IMAGE, SLEEP, alias="box")
        proxy.inject(rf"POST /v[\d.]+/containers/{ID}/exec", kind="reset")
        with pytest.raises(EngineUnavailableError) as caught:
            box.exec(["true"])
        assert "while running ['true'] in container" in str(caught.value)
        # The proxy resets the connection before any answer: http.client reads that as the
        # engine closing it.
        assert "remote end closed connection without response" in str(caught.value)
        assert "urllib3" not in str(caught.value) and "ProtocolError" not in str(caught.value)  # noqa: PT018


SESSION = f"""
def test_one(docker_network):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="box")

def test_two(docker_network):
    pass
"""


def test_a_passing_failure_of_a_session_start_call_is_tried_again(
    pytester, proxy, docker_client, monkeypatch
):
    monkeypatch.setenv("DOCKER_HOST", proxy.url)
    proxy.inject(r"GET /v[\d.]+/info")  # the engine's identity, for its lock files
    proxy.inject(r"GET /v[\d.]+/images/pytest-dockernet/lease:1/json")  # the lease image's check
    pytester.makepyfile(test_session=SESSION)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=2)
    assert any("/info" in line for line in proxy.log), proxy.log
    assert any("lease:1" in line for line in proxy.log), proxy.log
    wait_until_gone(docker_client, run_id(result))


def test_a_failing_engine_mid_session_is_one_sentence_and_leaves_nothing(
    pytester, proxy, docker_client, monkeypatch
):
    monkeypatch.setenv("DOCKER_HOST", proxy.url)
    proxy.inject(rf"GET /v[\d.]+/containers/{ID}/json", times=3)
    pytester.makepyfile(
        test_session=SESSION.replace("pass", f"docker_network.run_job({TEST_IMAGE!r}, ['true'])")
    )
    result = pytester.runpytest_subprocess()
    text = result.stdout.str()
    assert "docker.errors" not in text and "Traceback" not in text, text  # noqa: PT018
    assert "HTTP 500" in text or result.ret == 0, text
    wait_until_gone(docker_client, run_id(result))
    assert SUITE_LABELS  # the inner session carries the suite's label: the leak check covers it
