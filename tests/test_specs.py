"""Specs: a network's or a service's settings as one frozen value, checked once (no engine needed)."""

from __future__ import annotations

import pytest

from pytest_dockernet import wait
from pytest_dockernet.core.specs import NetworkSpec, Options, ServiceSpec

# ---- networks -----------------------------------------------------------------------------


def test_a_network_spec_compares_and_hashes_by_its_settings():
    one = NetworkSpec.of(test="t::a", internal=True, labels={"b": "2", "a": "1"}, options={"x": "1"})
    same = NetworkSpec.of(test="t::a", internal=True, labels={"a": "1", "b": "2"}, options={"x": "1"})
    assert one == same
    assert hash(one) == hash(same)
    assert one.labels == (("a", "1"), ("b", "2"))
    assert one.label_dict == {"a": "1", "b": "2"}
    assert one.option_dict == {"x": "1"}
    assert NetworkSpec.of(test="t::a").option_dict is None
    assert one != NetworkSpec.of(test="t::b", internal=True, labels={"a": "1", "b": "2"}, options={"x": "1"})
    assert NetworkSpec.of(labels=["k"]).labels == (("k", ""),)


def test_a_network_spec_refuses_a_setting_of_the_wrong_kind():
    with pytest.raises(TypeError, match="network setting internal must be True or False, not 'yes'"):
        NetworkSpec.of(internal="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="network options must be a dict of strings"):
        NetworkSpec.of(options=["mtu"])  # type: ignore[arg-type]


# ---- services -----------------------------------------------------------------------------


def test_a_service_spec_compares_and_hashes_by_what_it_starts():
    def spec() -> ServiceSpec:
        return ServiceSpec.of(
            "redis:7",
            ["redis-server", "--save", ""],
            alias="cache",
            environment={"B": "2", "A": "1"},
            wait=wait.port(6379),
            ports={6379: None},
            healthcheck={"test": ["CMD", "true"]},
        )

    assert spec() == spec()
    assert hash(spec()) == hash(spec())
    assert spec().environment == ("A=1", "B=2")
    assert spec().command == ("redis-server", "--save", "")
    assert spec().command_arg == ["redis-server", "--save", ""]
    assert spec().aliases == ("cache",)
    assert spec() != ServiceSpec.of("redis:7", ["redis-server"], alias="cache", wait=wait.port(6379))
    assert ServiceSpec.of("redis:7", wait=wait.port(6379)) != ServiceSpec.of("redis:7", wait=wait.port(6380))
    assert ServiceSpec.of("redis:7", ports={6379: None}) != ServiceSpec.of("redis:7", ports={6379: 16379})


def test_options_hand_out_copies_so_a_caller_never_changes_the_spec():
    options = Options({"ports": {6379: None}, "volumes": ["a:/a"], "bind": ("127.0.0.1", 80)})
    given = options.kwargs()
    given["ports"][6380] = None
    given["volumes"].append("b:/b")
    assert options.kwargs() == {"ports": {6379: None}, "volumes": ["a:/a"], "bind": ("127.0.0.1", 80)}
    assert isinstance(options.kwargs()["bind"], tuple)  # (host ip, port), not two bindings
    assert Options({"a": [1, 2]}) != Options({"a": (1, 2)})
    assert hash(Options({"a": {"x": [1]}})) == hash(Options({"a": {"x": [1]}}))


def test_built_in_waits_are_equal_when_they_wait_for_the_same_thing():
    assert wait.port(6379) == wait.port(6379)
    assert wait.port(6379) != wait.port(6379, timeout=5)
    assert wait.http(8080, "/health") == wait.http(8080, "/health")
    assert wait.http(8080, "/health") != wait.http(8080, "/")
    assert wait.all_of(wait.port(1), wait.log("x")) == wait.all_of(wait.port(1), wait.log("x"))
    assert wait.command(["true"]) == wait.command(["true"])
    assert len({wait.healthy(), wait.healthy(), wait.log("ready")}) == 2

    def mine(service: object) -> bool:
        return True

    assert wait.Strategy("mine", mine) == wait.Strategy("mine", mine)
    assert wait.Strategy("mine", mine) != wait.Strategy("mine", lambda service: True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"wait": wait.port},
            r"wait= takes a strategy of pytest_dockernet.wait.*\(call it: wait.port\(6379\)",
        ),
        (
            {"wait": "port"},
            r"wait= takes a strategy of pytest_dockernet.wait, such as wait.port\(6379\).* not 'port'",
        ),
        ({"wait": [wait.port(1), 5]}, r"wait= takes a strategy .* not 5"),
        (
            {"ports": [8080]},
            r"ports= takes a dict of container port to host port, such as ports=\{6379: None\}",
        ),
        ({"environment": "A=1"}, r"environment must be a dict or a list of 'KEY=value' strings"),
        (
            {"network_mode": "host"},
            r"does not take 'network_mode': a container lives on the network that runs it",
        ),
        ({"detach": False}, r"always detaches; run a command to completion with run_job\(\)"),
    ],
)
def test_a_service_argument_that_cannot_work_is_one_sentence_before_anything_starts(kwargs, message):
    with pytest.raises(TypeError, match=message):
        ServiceSpec.of("busybox", **kwargs)


@pytest.mark.parametrize("value", [-1, -0.5, "1", True])
def test_a_negative_or_non_number_min_uptime_is_refused(value):
    with pytest.raises(ValueError, match=f"min_uptime must be 0 or more seconds, not {value!r}"):
        ServiceSpec.of("busybox", min_uptime=value)


def test_an_image_must_be_a_reference():
    with pytest.raises(TypeError, match="image must be an image reference such as 'redis:7', not None"):
        ServiceSpec.of(None)  # type: ignore[arg-type]


def test_volumes_of_docker_volume_stand_for_their_names():
    class Named:
        def __str__(self) -> str:
            return "dockernet-abc-vol-1"

    spec = ServiceSpec.of("busybox", volumes={Named(): {"bind": "/data", "mode": "rw"}})
    assert spec.options.kwargs()["volumes"] == {"dockernet-abc-vol-1": {"bind": "/data", "mode": "rw"}}
