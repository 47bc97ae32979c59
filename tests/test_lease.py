"""Hosts sharing one engine: a run's lease tells the others whether it still lives.

The shared engine is a second dockerd of the test's own (see test_engine_restart.py). A
"host" is a pytest run in UTS, PID and mount namespaces of its own, with a host name and a
state directory of its own: SIGKILL of the namespace's first process kills its whole
process tree, the reaper included, as the death of a CI machine would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import docker
import pytest
from conftest import TEST_IMAGE
from test_reaper import leftovers, text_of, wait_for

from pytest_dockernet import new_run_id
from pytest_dockernet.engine.images import import_busybox
from pytest_dockernet.engine.naming import HOST_ENV
from pytest_dockernet.engine.statedir import STATE_DIR_ENV
from pytest_dockernet.runs.lease import (
    LABEL_LEASE_OF,
    EngineClock,
    Lease,
    engine_clock,
    expired_leases,
    leases,
    parse_engine_time,
    renew,
    take_lease,
)

needs_namespaces = pytest.mark.skipif(
    shutil.which("dockerd") is None or shutil.which("unshare") is None or os.getuid() != 0,
    reason="needs dockerd, unshare and root",
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_a_lease_expires_by_the_engines_clock_and_never_before_the_engine_was_up_a_lease_long():
    lease = Lease("r", "id", T0, 10.0, {})
    assert not lease.expired(EngineClock(T0 + timedelta(seconds=10), None))
    assert lease.expired(EngineClock(T0 + timedelta(seconds=11), None))
    # The engine restarted 5 s ago: nobody could renew while it was down.
    restarted = EngineClock(T0 + timedelta(seconds=60), T0 + timedelta(seconds=55))
    assert not lease.expired(restarted)
    assert lease.expired(EngineClock(T0 + timedelta(seconds=66), T0 + timedelta(seconds=55)))


def test_engine_times_parse_as_docker_writes_them():
    assert parse_engine_time("2026-12-01T12:00:00.123456789Z") == T0 + timedelta(microseconds=123456)
    assert parse_engine_time("2026-12-01T13:00:00+01:00") == T0
    assert parse_engine_time("2026-12-01T12:00:00Z") == T0
    assert parse_engine_time("") is None
    assert parse_engine_time("yesterday") is None


def test_renewal_replaces_the_lease_and_an_engine_restart_restarts_the_clock(engine):
    client = docker.DockerClient(base_url=engine.host)
    run = new_run_id()
    take_lease(client, run, 4, {"team": "qa"}, f"dockernet-{run}-lease-0")
    first = leases(client, run)[run]
    time.sleep(1.1)
    assert renew(client, run)
    renewed = leases(client)[run]
    assert renewed.id != first.id
    assert renewed.labels["team"] == "qa"
    assert client.api.inspect_container(renewed.id)["Name"].startswith(f"/dockernet-{run}-lease-")
    assert len(client.api.containers(all=True, filters={"label": [f"{LABEL_LEASE_OF}={run}"]})) == 1
    wait_for(lambda: expired_leases(client), 10, "the lease to expire")
    engine.stop()
    engine.start()
    client = docker.DockerClient(base_url=engine.host)
    clock = engine_clock(client)
    assert clock.up_since is not None
    assert clock.up_since > renewed.created
    assert expired_leases(client) == []  # the engine has been up for less than a lease
    wait_for(lambda: expired_leases(client), 10, "the lease to expire after the restart")


def host(name: str, tmp: Path, engine_host: str, **extra: str) -> dict[str, str]:
    """The environment of a run on "host" ``name``: its own host name (from its UTS
    namespace: no PYTEST_DOCKERNET_HOST), state directory and engine."""
    env = {key: value for key, value in os.environ.items() if key != HOST_ENV}
    env.update(
        {
            "DOCKER_HOST": engine_host,
            STATE_DIR_ENV: str(tmp / f"state-{name}"),
        }
    )
    env.update(extra)
    return env


def on_host(name: str, command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``command`` under the first process of a host of its own: UTS, PID and mount namespaces.

    That first process waits, after ``command``, for the run's reaper too: when it exits the
    kernel kills what is left in the namespace, as a host's death does, not its normal life."""
    script = 'hostname "$0" && "$@"; status=$?; while pgrep -f "pytest_dockernet[.]runs[.]reaper" >/dev/null; do sleep 0.1; done; exit $status'
    return subprocess.Popen(
        ["unshare", "--uts", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child",
         "sh", "-c", script, name, *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


HOLD = f"""
import os, time

def test_hold(docker_network):
    docker_network.run({TEST_IMAGE!r}, ["sleep", "300"], alias="held")
    open(os.environ["READY"], "w").write(docker_network.name.split("-")[1])
    while not os.path.exists(os.environ["RELEASE"]):
        time.sleep(0.1)
"""

SWEEPER = """
def test_sweeper(docker_network):
    pass
"""

PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q"]


@needs_namespaces
def test_a_dead_hosts_run_is_swept_by_another_host_once_its_lease_expired(engine, tmp_path):
    client = docker.DockerClient(base_url=engine.host)
    import_busybox(client, TEST_IMAGE)
    (tmp_path / "test_hold.py").write_text(HOLD)
    (tmp_path / "test_sweeper.py").write_text(SWEEPER)
    lease = {"PYTEST_DOCKERNET_LEASE": "3", "PYTEST_DOCKERNET_SWEEP": "0"}
    doomed = on_host(
        "host-a",
        [*PYTEST, "test_hold.py"],
        host(
            "a1", tmp_path, engine.host, READY=str(tmp_path / "a1"), RELEASE=str(tmp_path / "never"), **lease
        ),
        tmp_path,
    )
    live = on_host(
        "host-a",
        [*PYTEST, "test_hold.py"],
        host("a2", tmp_path, engine.host, READY=str(tmp_path / "a2"), RELEASE=str(tmp_path / "go"), **lease),
        tmp_path,
    )

    def both_ready() -> list[str] | None:
        runs = [text_of(tmp_path / "a1"), text_of(tmp_path / "a2")]
        return runs if all(runs) else None

    try:
        dead_run, live_run = wait_for(both_ready, 60, "both runs of host-a")
        doomed.send_signal(signal.SIGKILL)  # the host dies: its runs' processes, reaper included
        died = time.monotonic()
        doomed.wait()
        time.sleep(1)
        assert len(leftovers(client, dead_run)) == 2  # nobody of host-a is left to reap it

        sweeper_env = host("b", tmp_path, engine.host, PYTEST_DOCKERNET_SWEEP="1")
        listing = on_host(
            "host-b", [sys.executable, "-m", "pytest_dockernet", "ls"], sweeper_env, tmp_path
        ).communicate(timeout=60)[0]
        rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
        assert "alive" in rows[live_run], listing

        wait_for(lambda: expired_leases(client), 15, "host-a's dead lease to expire")
        expired_after = time.monotonic() - died
        listing = on_host(
            "host-b", [sys.executable, "-m", "pytest_dockernet", "ls"], sweeper_env, tmp_path
        ).communicate(timeout=60)[0]
        rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
        assert "dead (lease expired)" in rows[dead_run], listing
        assert "host-a" in rows[dead_run], listing
        assert "alive" in rows[live_run], listing

        swept = on_host("host-b", [*PYTEST, "test_sweeper.py"], sweeper_env, tmp_path)
        output = swept.communicate(timeout=120)[0]
        assert swept.returncode == 0, output
        assert f"left by 1 dead run ({dead_run})" in output, output
        assert leftovers(client, dead_run) == []
        assert leases(client, dead_run) == {}
        assert len(leftovers(client, live_run)) == 2  # a live run of the same host: untouched
        print(f"host death to lease expiry: {expired_after:.1f} s (lease 3 s)")
    finally:
        (tmp_path / "go").touch()
        for process in (doomed, live):
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
    wait_for(
        lambda: not leftovers(client, live_run) and not leases(client, live_run),
        30,
        "host-a's live run to end",
    )
