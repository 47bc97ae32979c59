"""One-shot jobs on a network (``Network.run_job``), and run()'s contract for exiting containers."""

from __future__ import annotations

import time

import pytest
from conftest import core_identity

from pytest_dockernet import ImageUnavailableError, JobTimeoutError, NetworkManager, ServiceStartError
from pytest_dockernet.engine.cleanup import find_labelled
from pytest_dockernet.engine.naming import LABEL_RUN

SLEEP = ["sleep", "300"]


def containers_of(client, run):
    return [c["Names"][0].lstrip("/") for c in find_labelled(client, run)[0]]


def test_a_job_reads_stdin_reaches_services_by_alias_and_is_removed(manager, image, docker_client):
    with manager.create_network() as net:
        net.run(image, ["httpd", "-f", "-p", "8080", "-h", "/www"], alias="web")
        result = net.run_job(
            image, ["sh", "-c", "tr a-z A-Z; wget -qO- http://web:8080/ 2>&1"], stdin="hello\n"
        )
        assert result.exit_code == 1  # busybox wget: the 404 of an empty /www
        assert result.output.startswith("HELLO\n")
        assert "404" in result.output
        assert not result.ok
        assert [name for name in containers_of(docker_client, manager.identity.run) if "-job" in name] == []
        assert len(net.services) == 1, "the job is not a service of the network once done"
        assert net.started == 2


@pytest.mark.parametrize(
    ("command", "code"), [(["true"], 0), (["sh", "-c", "echo out; echo err >&2; exit 7"], 7)]
)
def test_exit_codes_are_returned_not_raised(manager, image, command, code):
    with manager.create_network() as net:
        result = net.run_job(image, command)
    assert result.exit_code == code
    assert result.ok is (code == 0)
    if code:
        assert sorted(result.output.splitlines()) == ["err", "out"]


def test_binary_stdin_of_any_size(manager, image):
    data = bytes(range(256)) * 4096  # 1 MiB
    with manager.create_network() as net:
        result = net.run_job(image, ["sh", "-c", "wc -c"], stdin=data)
    assert result.output.strip() == str(len(data))


def test_a_job_past_its_timeout_is_killed_with_its_output_so_far(manager, image, docker_client):
    with manager.create_network() as net:
        with pytest.raises(JobTimeoutError) as excinfo:
            net.run_job(image, ["sh", "-c", "echo started; sleep 300"], timeout=1.5)
        message = str(excinfo.value)
        assert "was still running after 1.5 s and was killed; its output so far:\nstarted" in message
        assert excinfo.value.output == "started\n"
        assert [name for name in containers_of(docker_client, manager.identity.run) if "-job" in name] == []


def test_jobs_report_image_errors_as_run_does(manager, image):
    with manager.create_network() as net:
        with pytest.raises(ImageUnavailableError, match=r"'127\.0\.0\.1:9/nothing:0' is neither present"):
            net.run_job("127.0.0.1:9/nothing:0", ["true"])
        with pytest.raises(ImageUnavailableError, match="is not a valid image reference"):
            net.run_job("UPPER/Case;rm:1", ["true"])
        with pytest.raises(ServiceStartError, match=r"job .*-job.* could not start: .*no-such-command"):
            net.run_job(image, ["no-such-command"])
        with pytest.raises(TypeError, match=r"run_job\(\) does not take detach="):
            net.run_job(image, ["true"], detach=True)
        with pytest.raises(ValueError, match="timeout must be more than 0"):
            net.run_job(image, ["true"], timeout=0)


def test_a_kept_run_keeps_its_jobs(docker_client, image):
    identity = core_identity()
    identity.keep = True
    manager = NetworkManager.for_client(docker_client, identity)
    net = manager.create_network()
    try:
        assert net.run_job(image, ["echo", "kept"]).output == "kept\n"
        kept = find_labelled(docker_client, identity.run)[0]
        assert len(kept) == 1
        assert kept[0]["Labels"][LABEL_RUN] == identity.run
    finally:
        net.remove()


@pytest.mark.parametrize("attempt", range(5))
def test_run_with_min_uptime_refuses_a_container_that_exits_during_start_every_time(manager, image, attempt):
    # Without min_uptime, run() checks once, right after the start: a command that exits
    # within milliseconds may still be running then. min_uptime's watch returns the moment
    # the container exits, so the outcome no longer depends on timing.
    with manager.create_network() as net:
        started = time.monotonic()
        with pytest.raises(
            ServiceStartError, match="exited at once with status 0; a command meant to finish is a job"
        ):
            net.run(image, ["true"], min_uptime=5)
        assert time.monotonic() - started < 4, "the watch returned when the container exited"
        assert net.services == []
