"""Prefetching: the next test's network is made while the test before it runs."""

from __future__ import annotations

import pytest
from conftest import core_identity

from pytest_dockernet import NetworkManager, RunEndedError
from pytest_dockernet.engine.cleanup import find_labelled
from pytest_dockernet.engine.naming import LABEL_TEST


def network_names(client, run):
    return sorted(n["Name"] for n in find_labelled(client, run)[1])


def test_a_prefetched_network_is_taken_by_the_call_it_was_made_for(manager, docker_client):
    manager.prefetch_network(test="t::next", internal=True)
    network = manager.create_network(test="t::next", internal=True)
    info = docker_client.api.inspect_network(network.id)
    assert info["Internal"]
    assert info["Labels"][LABEL_TEST] == "t::next"
    assert manager.tally.networks_created == 1
    manager.release(network)
    assert network_names(docker_client, manager.identity.run) == []


def test_an_unused_prefetch_is_removed_and_counted_nowhere(manager, docker_client):
    run = manager.identity.run
    manager.prefetch_network(test="t::a")
    other = manager.create_network(test="t::b")  # not what was prefetched
    assert other.test == "t::b"
    manager.drain()
    assert network_names(docker_client, run) == [other.name]
    manager.prefetch_network(test="t::c")
    manager.prefetch_network(test="t::d")  # replaces the one for t::c
    manager.release(other)
    manager.close()
    assert network_names(docker_client, run) == []
    assert (manager.tally.networks_created, manager.tally.networks_removed) == (1, 1)
    assert manager.tally.failures == []


def test_an_unused_prefetch_is_removed_even_when_keeping(docker_client, prune_afterwards):
    identity = core_identity()
    identity.keep = True
    manager = NetworkManager.for_client(docker_client, identity)
    prune_afterwards(identity.run)
    kept = manager.create_network(test="t::kept")
    manager.prefetch_network(test="t::never")
    manager.release(kept)
    manager.close()
    assert network_names(docker_client, identity.run) == [kept.name]
    assert manager.tally.kept == [kept.name]


def test_a_failing_prefetch_leaves_the_error_to_the_call(manager, monkeypatch):
    # An orphan (its run's root process is gone) refuses to create networks: the
    # prefetch fails quietly, and the call it was made for raises.
    monkeypatch.setattr(manager.identity, "root_pid", 2**22 + 7)
    monkeypatch.setattr(manager.identity, "root_started", 1.0)
    manager.prefetch_network(test="t::x")
    with pytest.raises(RunEndedError):
        manager.create_network(test="t::x")


PREFETCH_TESTS = """
import time
import pytest
from pytest_dockernet.engine.naming import LABEL_TEST

def networks_for(client, test):
    return client.api.networks(filters={"label": [f"{LABEL_TEST}={test}"]})

def test_first(docker_network, docker_client, request):
    time.sleep(1.5)  # the next test's network is made meanwhile
    nextid = request.node.nodeid.replace("test_first", "test_second")
    request.config.stash.setdefault(SEEN, []).append(len(networks_for(docker_client, nextid)))

def test_second(docker_network, docker_client, request):
    assert docker_network.test == request.node.nodeid
    time.sleep(1.5)
    skipped = request.node.nodeid.replace("test_second", "test_skipped")
    broken = request.node.nodeid.replace("test_second", "test_broken_fixture")
    request.config.stash[SEEN].append(len(networks_for(docker_client, skipped)))
    request.config.stash[SEEN].append(len(networks_for(docker_client, broken)))

@pytest.mark.skip(reason="never runs")
def test_skipped(docker_network):
    pass

def test_after_skip(docker_network):
    time.sleep(1.5)

@pytest.fixture
def broken():
    raise RuntimeError("set-up fails before the network fixture")

def test_broken_fixture(broken, docker_network):
    pass

def test_last(docker_network, request):
    print("SEEN", request.config.stash[SEEN])

SEEN = pytest.StashKey()
"""


@pytest.mark.parametrize("prefetch", [True, False])
def test_the_next_tests_network_is_made_while_a_test_runs(pytester, docker_client, prefetch):
    pytester.makepyfile(test_seq=PREFETCH_TESTS)
    args = ["-p", "no:randomly", "-s"] + ([] if prefetch else ["--dockernet-no-prefetch"])
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=4, skipped=1, errors=1)
    # Prefetched for test_second; never for a test marked skip; for test_broken_fixture
    # (after test_after_skip) it was made, went unused, and was removed uncounted.
    result.stdout.fnmatch_lines(["*SEEN [[]1, 0, 0[]]" if prefetch else "*SEEN [[]0, 0, 0[]]"])
    result.stdout.fnmatch_lines(
        ["run *: created 4 networks and 0 containers; removed 4 networks and 0 containers"]
    )
    run = result.stdout.str().split("run ", 1)[1][:8]
    assert network_names(docker_client, run) == []


def test_prefetching_under_xdist_leaves_nothing(pytester, docker_client, image):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_unit(docker_network, request, n):
            assert docker_network.test == request.node.nodeid
            service = docker_network.run({image!r}, ["sleep", "60"], alias="one")
            assert service.exec(["nslookup", "one"]).ok
        """
    )
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        ["run *: created 8 networks and 8 containers; removed 8 networks and 8 containers"]
    )
    run = result.stdout.str().split("run ", 1)[1][:8]
    assert network_names(docker_client, run) == []
