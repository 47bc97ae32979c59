"""The plugin seen from a user's test suite: real pytest sessions (pytester) on the real engine."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from conftest import FAILING_REMOVAL_CONFTEST, TEST_IMAGE

from pytest_dockernet.engine.cleanup import find_labelled
from pytest_dockernet.engine.naming import LABEL_KEEP

RUN_LINE = re.compile(
    r"run ([0-9a-f]{8}): created (\d+) networks? and (\d+) containers?; removed (\d+) networks?"
)


def run_id(result: pytest.RunResult) -> str:
    match = RUN_LINE.search(result.stdout.str())
    assert match, result.stdout.str()
    return match.group(1)


def with_venv_path() -> dict[str, str]:
    """The environment with this interpreter's scripts (pytest-dockernet) on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def leftovers(client, run):
    containers, networks = find_labelled(client, run)
    return [c["Names"][0] for c in containers] + [n["Name"] for n in networks]


@pytest.fixture
def suite(pytester: pytest.Pytester, image: str) -> pytest.Pytester:
    """A pytester whose tests can use ``IMAGE`` (the locally built busybox)."""
    pytester.makeconftest(f"IMAGE = {TEST_IMAGE!r}\n")
    return pytester


def test_fixtures_give_isolated_networks(suite, docker_client):
    suite.makepyfile(
        """
        from ipaddress import IPv4Address, IPv4Network
        from conftest import IMAGE
        from pytest_dockernet import Network

        SLEEP = ["sleep", "300"]

        def test_network(docker_network):
            assert isinstance(docker_network, Network)
            assert isinstance(docker_network.subnet, IPv4Network)
            assert isinstance(docker_network.gateway, IPv4Address)
            server = docker_network.run(IMAGE, ["httpd", "-f", "-p", "8080", "-h", "/www"], alias="web")
            client = docker_network.run(IMAGE, SLEEP, alias="client")
            result = client.exec(["wget", "-qO-", "http://web:8080/"])
            assert "404" in result.output, result
            assert docker_network.services == [server, client]

        def test_worker_network_is_shared(docker_worker_network, request):
            request.config.cache.set("first", docker_worker_network.id)

        def test_worker_network_is_shared_again(docker_worker_network, request):
            assert request.config.cache.get("first", None) == docker_worker_network.id

        def test_factory(docker_network_factory, docker_client):
            plain = docker_network_factory()
            cut_off = docker_network_factory(internal=True, labels={"purpose": "x"},
                                             options={"com.docker.network.driver.mtu": "1400"})
            info = docker_client.api.inspect_network(cut_off.id)
            assert info["Internal"] and info["Labels"]["purpose"] == "x"
            assert "1400" in (info["Options"].get("com.docker.network.driver.mtu"), info["Options"].get("mtu"))
            assert plain.id != cut_off.id and not plain.subnet.overlaps(cut_off.subnet)
            assert info["Labels"]["pytest-dockernet.test"].endswith("::test_factory")
        """
    )
    result = suite.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*pytest-dockernet*",
            "run *: created 4 networks and 2 containers; removed 4 networks and 2 containers",
        ]
    )
    assert leftovers(docker_client, run_id(result)) == []


def test_xdist_workers_never_collide(suite, docker_client):
    """Each test makes a network and two services; under -n 2 nothing is shared or overlaps."""
    suite.makepyfile(
        """
        import json, os
        import pytest
        from conftest import IMAGE

        @pytest.mark.parametrize("n", range(8))
        def test_pair(docker_network, docker_worker_network, docker_client, n, worker_id):
            a = docker_network.run(IMAGE, ["sleep", "300"], alias="a")
            b = docker_network.run(IMAGE, ["sleep", "300"], alias="b")
            assert a.exec(["ping", "-c1", "-W2", "b"]).exit_code == 0
            # What the engine holds for this run right now: both workers' networks.
            run = docker_network.name.split("-")[1]
            alive = docker_client.api.networks(filters={"label": f"pytest-dockernet.run={run}"})
            record = {"network": docker_network.name, "containers": [a.name, b.name], "worker": worker_id,
                      "alive": [n["IPAM"]["Config"][0]["Subnet"] for n in alive]}
            with open(f"record-{n}.json", "w") as out:
                json.dump(record, out)
        """
    )
    result = suite.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=8)
    records = [json.loads(p.read_text()) for p in suite.path.glob("record-*.json")]
    assert len(records) == 8
    assert {r["worker"] for r in records} == {"gw0", "gw1"}
    assert len({r["network"] for r in records}) == 8
    assert len({c for r in records for c in r["containers"]}) == 16
    run = run_id(result)
    assert all(r["network"].startswith(f"dockernet-{run}-gw") for r in records)
    # Subnets are reused once a network is gone; networks alive together never overlap.
    assert max(len(r["alive"]) for r in records) >= 3
    for record in records:
        for a, b in itertools.combinations(map(IPv4Network, record["alive"]), 2):
            assert not a.overlaps(b)
    # The controller sums what the workers report.
    result.stdout.fnmatch_lines(
        ["run *: created 10 networks and 16 containers; removed 10 networks and 16 containers"]
    )
    assert leftovers(docker_client, run) == []


def test_keep_leaves_everything_and_says_how_to_remove_it(suite, docker_client, prune_afterwards):
    suite.makepyfile(
        """
        from conftest import IMAGE
        from pytest_dockernet import service_fixture

        declared = service_fixture(IMAGE, ["sleep", "300"], alias="declared", scope="module")

        def test_one(docker_network):
            docker_network.run(IMAGE, ["sleep", "300"], alias="kept")
            assert docker_network.run_job(IMAGE, ["echo", "job"]).output == "job\\n"

        def test_declared(declared):
            pass
        """
    )
    result = suite.runpytest_subprocess("--dockernet-keep")
    run = run_id(result)
    prune_afterwards(run)
    result.assert_outcomes(passed=2)
    time.sleep(1.5)  # a reaper, had one been started, would have removed them by now
    listed = subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", "ls", "--run", run], capture_output=True, text=True
    )
    assert listed.stdout.splitlines()[1].split()[:2] == [run, "kept"]
    dry = subprocess.run(
        [sys.executable, "-m", "pytest_dockernet", "prune", "--dry-run"], capture_output=True, text=True
    )
    assert run not in dry.stdout, "a plain prune leaves kept runs alone"
    result.stdout.fnmatch_lines(
        [
            "run *: created 2 networks and 3 containers; removed 0 networks and 0 containers",
            "kept 2 networks and 3 containers (--dockernet-keep): dockernet-*",
            "remove them with:",
        ]
    )
    containers, networks = find_labelled(docker_client, run)
    assert len(containers) == 3, "the service, the job and the declarative service: all kept"
    assert len(networks) == 2
    assert all(item["Labels"][LABEL_KEEP] == "1" for item in containers + networks)
    assert listed.stdout.splitlines()[1].split()[5:] == ["2", "3", "0"]
    command = result.stdout.lines[result.stdout.lines.index("remove them with:") + 1].strip()
    assert command == f"pytest-dockernet prune --run {run}"
    subprocess.run(command, shell=True, check=True, capture_output=True, env=with_venv_path())
    assert leftovers(docker_client, run) == []


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--dockernet-pool", "10.0.0.300/16"], "", "--dockernet-pool: '10.0.0.300/16' is not an IPv4 CIDR*"),
        (["--dockernet-subnet-size", "40"], "", "--dockernet-subnet-size: the subnet size must be*"),
        (
            ["--dockernet-pool", "10.0.0.0/28", "--dockernet-subnet-size", "24"],
            "",
            "*cannot hold one /24 network*",
        ),
        (["--dockernet-prefix", "no spaces"], "", "--dockernet-prefix: prefix 'no spaces' must start*"),
        (
            [],
            "dockernet_keep = perhaps",
            "ini option dockernet_keep: invalid truth value 'perhaps'; expected one of 1/0*",
        ),
        ([], "dockernet_pool = 10.0.0.0/8 10.1.0.0/16", "ini option dockernet_pool: pools * overlap"),
        (["--dockernet-pool", ","], "", "--dockernet-pool: ',' holds no pool; give at least one IPv4 CIDR*"),
        (["--dockernet-pool", "127.0.0.0/8"], "", "--dockernet-pool: pool 127.0.0.0/8 overlaps loopback*"),
        (["--dockernet-pool", "0.0.0.0/0"], "", "--dockernet-pool: pool 0.0.0.0/0 overlaps 'this network'*"),
        (["--dockernet-pool", "0.0.0.0/8"], "", "--dockernet-pool: pool 0.0.0.0/8 overlaps*"),
        (["--dockernet-pool", "169.254.0.0/16"], "", "*overlaps link-local (169.254.0.0/16)*"),
        (["--dockernet-pool", "224.0.0.0/4"], "", "*overlaps multicast (224.0.0.0/4)*"),
        (["--dockernet-pool", "240.0.0.0/4"], "", "*overlaps reserved class E and broadcast*"),
        (["--dockernet-engine-timeout", "soon"], "", "--dockernet-engine-timeout: 'soon' is not valid*"),
        (
            ["--dockernet-label", "nokey"],
            "",
            "--dockernet-label: * is not valid; expected KEY=VALUE, comma-separated ('nokey' is not KEY=VALUE)",
        ),
    ],
)
def test_bad_options_are_usage_errors(suite, args, ini, message):
    if ini:
        suite.makeini(f"[pytest]\n{ini}\n")
    suite.makepyfile("def test_never_runs(docker_network): pass")
    result = suite.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-dockernet: {message}"])


def test_no_engine_gives_one_clear_error_per_test(suite, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    suite.makepyfile(
        """
        def test_a(docker_network): pass
        def test_b(docker_worker_network): pass
        def test_c(): pass
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=2)
    output = result.stdout.str()
    # Once per error (two tests here), never twice for one: no "During handling of...". The
    # short summary repeats each in full when CI is set (pytest truncates it otherwise).
    report = output.split("short test summary info")[0]
    assert report.count("no Docker engine answers at unix:///nonexistent/docker.sock") == 2
    assert "During handling" not in output
    assert "(no such file or directory)" in output
    assert "sudo systemctl start docker" in output
    assert "Traceback" not in output
    assert "urllib3" not in output


def test_pool_exhausted_fails_the_test_naming_the_pool(suite, docker_client):
    suite.makepyfile(
        """
        def test_two_networks(docker_network_factory):
            docker_network_factory()
            docker_network_factory()
        """
    )
    result = suite.runpytest_subprocess("--dockernet-pool", "10.197.0.0/26", "--dockernet-subnet-size", "26")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*subnet pool 10.197.0.0/26 is exhausted: it holds 1 /26 network and 1 of them*"]
    )
    assert leftovers(docker_client, run_id(result)) == []


def test_bad_service_shows_one_clear_message_and_cleans_up(suite, docker_client):
    suite.makepyfile(
        """
        from conftest import IMAGE

        def test_crash(docker_network):
            docker_network.run(IMAGE, ["sleep", "300"], alias="ok")
            docker_network.run(IMAGE, ["sh", "-c", "echo no config >&2; exit 2"], alias="crash", min_uptime=10)

        def test_missing_image(docker_network):
            docker_network.run("127.0.0.1:9/nothing:0")
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E *ServiceStartError: container dockernet-*-crash (image *) exited at once with status 2;*",
            "E *no config",
            "E *ImageUnavailableError: image '127.0.0.1:9/nothing:0' is neither present on the engine nor pullable*",
        ],
        consecutive=False,
    )
    assert "pytest_dockernet/network.py" not in result.stdout.str(), "internals are hidden from tracebacks"
    assert leftovers(docker_client, run_id(result)) == []


@pytest.mark.parametrize("warning_filter", [[], ["-W", "error::pytest_dockernet.CleanupWarning"]])
def test_failed_removal_warns_and_never_changes_the_outcome(suite, docker_client, warning_filter):
    suite.makeconftest(FAILING_REMOVAL_CONFTEST)
    suite.makepyfile(
        """
        from conftest import IMAGE

        def test_passes(docker_network):
            docker_network.run(IMAGE, ["sleep", "300"], alias="stuck")

        def test_fails(docker_network):
            docker_network.run(IMAGE, ["sleep", "300"], alias="stuck")
            assert False, "the test's own failure"
        """
    )
    result = suite.runpytest_subprocess(*warning_filter)
    run = run_id(result)
    try:
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*the test's own failure*"])
        if not warning_filter:
            result.stdout.fnmatch_lines(
                [
                    "*CleanupWarning: could not remove container dockernet-*-stuck*btrfs*(a network of test *::test_*)"
                ]
            )
        result.stdout.fnmatch_lines(
            [
                "left behind 2 resources that could not be removed:",
                "  could not remove container dockernet-*-stuck*",
            ]
        )
    finally:
        subprocess.run([sys.executable, "-m", "pytest_dockernet", "prune", "--run", run], check=True)
    assert leftovers(docker_client, run) == []


def test_a_failed_test_reports_its_networks_services_and_logs(suite):
    suite.makepyfile(
        """
        from conftest import IMAGE

        def test_fails(docker_network, docker_network_factory):
            docker_network.run(IMAGE, ["sh", "-c", "echo one; echo two; echo three; exec sleep 300"], alias="api")
            docker_network_factory().run(IMAGE, ["sleep", "300"], alias="db")
            assert False, "boom"

        def test_passes(docker_network):
            docker_network.run(IMAGE, ["sh", "-c", "echo quiet; exec sleep 300"], alias="calm")
        """
    )
    result = suite.runpytest_subprocess("-p", "xdist", "-n", "2", "--dockernet-log-lines", "2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- dockernet: network dockernet-*-1 -*",
            "network dockernet-*-1 (*) subnet 10.199.* gateway 10.199.*",
            "  dockernet-*-api  image=dockernet-test/busybox:1  aliases=api  ip=10.199.*  state=running",
            "*- dockernet: logs of dockernet-*-api (last 2 lines) -*",
            "two",
            "three",
            "*- dockernet: network dockernet-*-2 -*",
            "  dockernet-*-db  image=* aliases=db  ip=*  state=running",
        ]
    )
    output = result.stdout.str()
    assert "one" not in output.split("logs of")[1].split("\n")[1:3]
    assert "-calm" not in output, "a passing test shows nothing"


def test_log_lines_option_is_validated(suite):
    suite.makepyfile("def test_x(): pass")
    result = suite.runpytest_subprocess("--dockernet-log-lines", "-3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-dockernet: --dockernet-log-lines: '-3' is not valid*"])


def test_declarative_service_fixtures_at_every_scope_with_dependencies(suite, docker_client):
    suite.makeconftest(
        f"""
        from pytest_dockernet import service_fixture, wait

        IMAGE = {TEST_IMAGE!r}
        HTTPD = ["sh", "-c", "echo hello > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]

        cache = service_fixture(IMAGE, HTTPD, alias="cache", scope="session", wait=wait.port(8080))
        store = service_fixture(IMAGE, HTTPD, alias="store", scope="package", wait=wait.port(8080))
        app = service_fixture(IMAGE, ["sleep", "300"], alias="app", scope="module",
                              depends_on=[cache, "store"], environment={{"CACHE_URL": "http://cache:8080/"}})
        worker = service_fixture(IMAGE, ["sleep", "300"], alias="worker", scope="class", depends_on=[app])
        job = service_fixture(IMAGE, ["sleep", "300"], alias="job", depends_on=[worker, cache])
        """
    )
    suite.makepyfile(
        test_one="""
        def test_app_reaches_its_dependencies_by_alias(app, cache):
            assert app.exec(["sh", "-c", "wget -qO- $CACHE_URL"]).output == "hello\\n"
            assert app.exec(["wget", "-qO-", "http://store:8080/"]).output == "hello\\n"
            assert app.network.name.endswith("-1") or app.network is not cache.network

        class TestWorkers:
            def test_worker_reaches_app(self, worker):
                assert worker.exec(["ping", "-c1", "-W2", "app"]).exit_code == 0

            def test_job_reaches_worker_and_cache(self, job, worker, app):
                assert job.exec(["ping", "-c1", "-W2", "worker"]).exit_code == 0
                assert job.exec(["wget", "-qO-", "http://cache:8080/"]).output == "hello\\n"
                assert job.network is not worker.network is not app.network

        def test_same_module_same_app(app, request):
            assert app.network.name.startswith("dockernet-")
        """,
    )
    result = suite.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert leftovers(docker_client, run_id(result)) == []


def test_service_fixture_rejects_an_unknown_scope():
    from pytest_dockernet import service_fixture

    with pytest.raises(
        ValueError, match="scope 'galaxy' is not one of function, class, module, package, session"
    ):
        service_fixture("x", scope="galaxy")


def test_published_ports_under_xdist_never_collide(suite):
    suite.makepyfile(
        """
        import json, socket
        import pytest
        from conftest import IMAGE
        from pytest_dockernet import wait

        @pytest.mark.parametrize("n", range(6))
        def test_publish(docker_network, n):
            web = docker_network.run(IMAGE, ["httpd", "-f", "-p", "8080", "-h", "/www"], ports={8080: None},
                                     wait=wait.http(8080, status=404))
            host, port = web.address(8080)
            with socket.create_connection((host, port), timeout=2):
                pass
            with open(f"port-{n}.json", "w") as out:
                json.dump([host, port], out)
        """
    )
    result = suite.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=6)
    addresses = [tuple(json.loads(p.read_text())) for p in suite.path.glob("port-*.json")]
    assert all(host == "127.0.0.1" for host, _ in addresses)


def test_an_image_built_from_a_dockerfile_once_per_run_under_xdist(suite, docker_client):
    tag, fixture_tag = f"dockernet-test/built-{os.getpid()}:1", f"dockernet-test/built-{os.getpid()}:2"
    context = suite.mkdir("context")
    (context / "Dockerfile").write_text(f"FROM {TEST_IMAGE}\nRUN echo built > /stamp\n")
    suite.makepyfile(
        f"""
        import pytest
        from pytest_dockernet import service_fixture
        from pytest_dockernet.engine import images

        stamped = service_fixture({fixture_tag!r}, ["sleep", "300"], alias="stamped", build="context")

        @pytest.mark.parametrize("n", range(4))
        def test_build(docker_client, n):
            built = images.build_image(docker_client, "context", {tag!r})
            open(f"built-{{n}}", "w").write(str(built))

        @pytest.mark.parametrize("n", range(2))
        def test_service_from_a_built_image(stamped, n):
            assert stamped.exec(["cat", "/stamp"]).output == "built\\n"
        """
    )
    try:
        result = suite.runpytest_subprocess("-p", "xdist", "-n", "2")
        result.assert_outcomes(passed=6)
        flags = sorted(p.read_text() for p in suite.path.glob("built-*"))
        assert flags == ["False", "False", "False", "True"], "built once, by one worker; reused by the rest"
        (context / "Dockerfile").write_text(f"FROM {TEST_IMAGE}\nRUN echo changed > /stamp\n")
        from pytest_dockernet.engine import images

        assert images.build_image(docker_client, context, tag) is True, "a changed context is rebuilt"
    finally:
        for name in (tag, fixture_tag):
            docker_client.images.remove(name, force=True)


def test_a_build_that_fails_names_the_image_and_shows_the_log(docker_client, tmp_path):
    from pytest_dockernet import ImageUnavailableError
    from pytest_dockernet.engine import images

    (tmp_path / "Dockerfile").write_text(f"FROM {TEST_IMAGE}\nRUN echo about to fail; exit 3\n")
    with pytest.raises(ImageUnavailableError, match=r"building 'dockernet-test/broken:1' from .* failed"):
        images.build_image(docker_client, tmp_path, "dockernet-test/broken:1")
    with pytest.raises(ImageUnavailableError, match="has no Dockerfile"):
        images.build_image(docker_client, tmp_path / "nowhere", "dockernet-test/broken:1")


def test_a_state_directory_others_may_write_to_fails_at_once(suite, tmp_path, monkeypatch):
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    monkeypatch.setenv("PYTEST_DOCKERNET_STATE_DIR", str(loose))
    suite.makepyfile("def test_needs_a_network(docker_network): pass")
    started = time.monotonic()
    result = suite.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*refusing to use the state directory {loose}: its mode 0777 lets other users write to it*"]
    )
    assert "Traceback" not in result.stdout.str()
    assert time.monotonic() - started < 30, "refused at once, not after a lock time-out"
    assert list(loose.iterdir()) == [], "nothing was written into it"


@pytest.mark.docker_only("hermetic networks are refused on podman (test_podman.py)")
def test_the_dockernet_marker_configures_networks_of_every_scope(suite, docker_client):
    suite.makepyfile(
        """
        import pytest
        from conftest import IMAGE
        from pytest_dockernet import service_fixture

        pytestmark = pytest.mark.dockernet(labels={"scope": "module"})

        cache = service_fixture(IMAGE, ["sleep", "300"], alias="cache", scope="class")

        @pytest.mark.dockernet(internal=True, hermetic=True, ipv6=True, options={"com.docker.network.driver.mtu": "1400"}, labels=["flagged"])
        def test_marked(docker_network, docker_client):
            info = docker_client.api.inspect_network(docker_network.id)
            assert info["Internal"] and info["EnableIPv6"]
            assert docker_network.hermetic and docker_network.subnet6 is not None
            assert info["Options"]["com.docker.network.driver.mtu"] == "1400"
            assert info["Labels"]["flagged"] == ""

        def test_module_marker(docker_network, docker_client):
            assert docker_client.api.inspect_network(docker_network.id)["Labels"]["scope"] == "module"
            assert not docker_network.internal

        @pytest.mark.dockernet(internal=True)
        class TestClassNetworks:
            def test_class_network(self, cache, docker_client):
                assert docker_client.api.inspect_network(cache.network.id)["Internal"]
        """
    )
    result = suite.runpytest_subprocess("-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=3)


def test_a_bad_marker_keyword_is_one_clear_error(suite):
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.dockernet(interal=True)
        def test_typo(docker_network):
            pass

        @pytest.mark.dockernet(ipv6="yes")
        def test_wrong_type(docker_network):
            pass
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.dockernet does not take 'interal'; its keywords are internal, hermetic, ipv6, options, labels",
            "*@pytest.mark.dockernet(ipv6='yes'): ipv6 must be a bool",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    markers = suite.runpytest_subprocess("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.dockernet(internal=False, hermetic=False, ipv6=False, *"])


def test_a_failed_tests_report_lists_guests_of_its_networks(suite):
    suite.makepyfile(
        """
        from conftest import IMAGE

        def test_fails(docker_network, docker_network_factory):
            other = docker_network_factory()
            visitor = other.run(IMAGE, ["sleep", "300"], alias="visitor")
            docker_network.connect(visitor, aliases=["guest-alias"])
            assert False
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["  guest dockernet-*-visitor (of network dockernet-*)  aliases here=guest-alias  ip here=10.*"]
    )


def test_a_tests_services_start_together_dependencies_first(suite):
    suite.makepyfile(
        """
        from datetime import datetime
        from conftest import IMAGE
        from pytest_dockernet import service_fixture, wait

        SLOW = ["sh", "-c", "sleep 1; echo up; exec sleep 300"]
        first = service_fixture(IMAGE, SLOW, alias="first", wait=wait.log("up"))
        second = service_fixture(IMAGE, SLOW, alias="second", wait=wait.log("up"))
        after = service_fixture(IMAGE, ["sleep", "300"], alias="after", depends_on=[first])

        def started(service):
            stamp = service.reload()["State"]["StartedAt"]
            return datetime.fromisoformat(stamp[:26])

        def test_together(first, second, after):
            assert abs((started(first) - started(second)).total_seconds()) < 0.5, "started together"
            assert (started(after) - started(first)).total_seconds() >= 0.9, "after its dependency was ready"
            assert after.exec(["ping", "-c1", "-W2", "first"]).ok
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_a_service_of_a_group_that_fails_is_named_and_the_rest_goes(suite, docker_client):
    suite.makepyfile(
        """
        from conftest import IMAGE
        from pytest_dockernet import service_fixture

        good = service_fixture(IMAGE, ["sleep", "300"], alias="good")
        broken = service_fixture(IMAGE, ["no-such-command"], alias="broken")
        needs_broken = service_fixture(IMAGE, ["sleep", "300"], alias="needy", depends_on=["broken"])

        def test_group(good, broken, needs_broken):
            pass

        def test_good_alone(good):
            pass
        """
    )
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ServiceStartError: container dockernet-*-broken (image *no-such-command*"])
    assert leftovers(docker_client, run_id(result)) == []


def test_help_names_the_environment_and_ini_twins_and_ini_values_are_typed(suite):
    result = suite.runpytest_subprocess("--help")
    text = " ".join(result.stdout.str().split())
    assert "--dockernet-no-sweep do not remove, at start, what dead earlier runs" in text
    assert "[env PYTEST_DOCKERNET_LOG_LINES; ini dockernet_log_lines]" in text
    assert "dockernet_keep (bool):" in text
    suite.makeini("[pytest]\ndockernet_log_lines = lots\n")
    suite.makepyfile("def test_never_runs(): pass")
    bad = suite.runpytest_subprocess()
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        ["ERROR: pytest-dockernet: ini option dockernet_log_lines: *lots*; expected a whole number*"]
    )


def test_a_readiness_time_out_shows_the_logs_once_and_errors_read_well_in_one_line(suite):
    suite.makepyfile(
        test_x="""
        from conftest import IMAGE
        from pytest_dockernet import wait

        def test_slow(docker_network):
            docker_network.run(IMAGE, ["sh", "-c", "echo booting-$((40+2)); sleep 300"], wait=wait.port(9999, timeout=1))

        def test_bad_image(docker_network):
            docker_network.run("127.0.0.1:9/nothing:0", ["true"])
        """
    )
    result = suite.runpytest_subprocess("-rA")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    report = output.split("short test summary info")[0]  # CI=true repeats messages whole there
    assert report.count("booting-42") == 1, "in the message, not again in the report"
    # 80 columns, as pytester's terminal: the error's name fits, and starts the line's message.
    result.stdout.fnmatch_lines(
        ["FAILED test_x.py::test_bad_image - pytest_dockernet.ImageUnavailableError*"]
    )


@pytest.mark.parametrize(
    "how", [["--dockernet-skip-without-engine"], ["-o", "dockernet_skip_without_engine=true"]]
)
def test_tests_that_need_an_engine_can_be_skipped_where_none_answers(suite, monkeypatch, how):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    suite.makepyfile(
        """
        def test_needs_docker(docker_network): pass
        def test_plain(): pass
        """
    )
    result = suite.runpytest_subprocess("-rs", *how)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * needs a Docker engine: no Docker engine answers at unix:///nonexistent/docker.sock*"]
    )


def test_the_docker_context_in_use_is_honoured(suite, monkeypatch, tmp_path):
    # A Docker CLI context (written by the docker CLI itself) pointing at a socket where no
    # engine answers: the plugin must try that socket, not the default one.
    config = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    subprocess.run(
        ["docker", "context", "create", "elsewhere", "--docker", "host=unix:///nonexistent/context.sock"],
        check=True,
        capture_output=True,
    )
    suite.makepyfile("def test_needs_docker(docker_network): pass")
    monkeypatch.setenv("DOCKER_CONTEXT", "elsewhere")
    result = suite.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no Docker engine answers at unix:///nonexistent/context.sock*"])
    monkeypatch.setenv("DOCKER_CONTEXT", "nosuch")
    result = suite.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*Docker context 'nosuch' (DOCKER_CONTEXT) does not exist*"])
    monkeypatch.delenv("DOCKER_CONTEXT")
    subprocess.run(["docker", "context", "use", "elsewhere"], check=True, capture_output=True)
    result = suite.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*no Docker engine answers at unix:///nonexistent/context.sock*"])
