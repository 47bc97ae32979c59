"""Settings precedence and validation: no engine needed."""

from __future__ import annotations

import re
from ipaddress import IPv4Network

import pytest

from pytest_dockernet.plugin.settings import Settings, SettingsError, resolve

NONE: dict[str, object] = {}


def test_defaults():
    settings = resolve(NONE, {}, NONE)
    assert settings == Settings()
    assert settings.pools == (IPv4Network("10.199.0.0/16"),)
    assert settings.subnet_size == 26
    # The default pool holds far more networks than Docker's own default pool (~30).
    assert 2 ** (settings.subnet_size - settings.pools[0].prefixlen) >= 500


def test_cli_beats_environment_beats_ini():
    cli = {"prefix": "cli"}
    env = {"PYTEST_DOCKERNET_PREFIX": "env", "PYTEST_DOCKERNET_SUBNET_SIZE": "27"}
    ini = {"prefix": "ini", "subnet_size": "28", "keep": "true"}
    settings = resolve(cli, env, ini)
    assert (settings.prefix, settings.subnet_size, settings.keep) == ("cli", 27, True)


def test_several_pools_repeated_or_comma_separated():
    settings = resolve({"pool": ["10.1.0.0/24,10.2.0.0/24", "10.3.0.0/24"]}, {}, NONE)
    assert [str(p) for p in settings.pools] == ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]
    assert resolve(NONE, {}, {"pool": ["10.4.0.0/24"]}).pools == (IPv4Network("10.4.0.0/24"),)


@pytest.mark.parametrize(
    ("cli", "env", "ini", "message"),
    [
        ({"pool": ["10.0.0.300/16"]}, {}, {}, "--dockernet-pool: '10.0.0.300/16' is not an IPv4 CIDR"),
        ({"pool": ["10.0.0.1/16"]}, {}, {}, "has host bits set"),
        ({"pool": ["10.0.0.0/16", "10.0.1.0/24"]}, {}, {}, "overlap"),
        ({}, {"PYTEST_DOCKERNET_SUBNET_SIZE": "big"}, {}, "PYTEST_DOCKERNET_SUBNET_SIZE: 'big' is not valid"),
        ({"subnet_size": "31"}, {}, {}, "--dockernet-subnet-size: the subnet size must be a prefix length"),
        ({"pool": ["10.0.0.0/28"], "subnet_size": "24"}, {}, {}, "cannot hold one /24 network"),
        ({}, {}, {"keep": "maybe"}, "ini option dockernet_keep: 'maybe' is not valid"),
        ({"prefix": "bad prefix"}, {}, {}, "--dockernet-prefix: prefix 'bad prefix'"),
        ({"lock_timeout": "-1"}, {}, {}, "--dockernet-lock-timeout: '-1' is not valid"),
        ({"engine_timeout": "0"}, {}, {}, "--dockernet-engine-timeout: '0' is not valid"),
        ({"pool": [","]}, {}, {}, "--dockernet-pool: ',' holds no pool; give at least one IPv4 CIDR"),
        ({}, {"PYTEST_DOCKERNET_POOL": ""}, {}, "PYTEST_DOCKERNET_POOL: '' holds no pool"),
        ({"pool": ["127.0.0.0/8"]}, {}, {}, "pool 127.0.0.0/8 overlaps loopback (127.0.0.0/8)"),
        ({"pool": ["0.0.0.0/0"]}, {}, {}, "pool 0.0.0.0/0 overlaps 'this network' (0.0.0.0/8)"),
        ({"pool": ["0.0.0.0/8"]}, {}, {}, "pool 0.0.0.0/8 overlaps 'this network'"),
        ({"pool": ["169.254.0.0/16"]}, {}, {}, "overlaps link-local (169.254.0.0/16)"),
        ({"pool": ["224.0.0.0/4"]}, {}, {}, "overlaps multicast (224.0.0.0/4)"),
        ({"pool": ["240.0.0.0/4"]}, {}, {}, "overlaps reserved class E and broadcast (240.0.0.0/4)"),
        ({"pool": ["10.0.0.0/16,127.1.0.0/16"]}, {}, {}, "pool 127.1.0.0/16 overlaps loopback"),
        ({"labels": ["novalue"]}, {}, {}, "--dockernet-label: ['novalue'] is not valid"),
        ({"labels": ["pytest-dockernet.run=x"]}, {}, {}, "are the plugin's own"),
        ({"pool6": ["fd00::/80"]}, {}, {}, "--dockernet-pool6: pool fd00::/80 cannot hold one /64 network"),
        ({"pool6": ["fe80::/16"]}, {}, {}, "overlaps link-local (fe80::/10)"),
        ({"pool6": ["ff00::/8"]}, {}, {}, "overlaps multicast (ff00::/8)"),
        ({"pool6": ["10.0.0.0/8"]}, {}, {}, "'10.0.0.0/8' is not an IPv6 CIDR"),
        ({"pool6": [","]}, {}, {}, "holds no pool; give at least one IPv6 CIDR"),
        (
            {},
            {"PYTEST_DOCKERNET_HERMETIC": "perhaps"},
            {},
            "PYTEST_DOCKERNET_HERMETIC: 'perhaps' is not valid",
        ),
    ],
)
def test_bad_values_name_their_source(cli, env, ini, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        resolve(cli, env, ini)


def test_labels_from_every_source():
    assert resolve({"labels": ["ci.job=42", "team=qa"]}, {}, NONE).labels == (
        ("ci.job", "42"),
        ("team", "qa"),
    )
    assert resolve(NONE, {"PYTEST_DOCKERNET_LABELS": "a=1,b=2"}, NONE).labels == (("a", "1"), ("b", "2"))
    assert resolve(NONE, {}, {"labels": ["a=1", "b="]}).labels == (("a", "1"), ("b", ""))


def test_engine_timeout():
    assert resolve(NONE, {"PYTEST_DOCKERNET_ENGINE_TIMEOUT": "2.5"}, NONE).engine_timeout == 2.5
    assert Settings().engine_timeout == 60


def test_ipv6_pools_and_hermetic():
    settings = resolve({"pool6": ["fd01::/56,fd02::/56"], "hermetic": True}, {}, NONE)
    assert [str(p) for p in settings.pools6] == ["fd01::/56", "fd02::/56"]
    assert settings.hermetic
    assert [str(p) for p in Settings().pools6] == ["fd00:d0c:4e7::/48"]
    assert resolve(NONE, {}, {"hermetic": "true"}).hermetic


def test_lease_engines_driver_sweep_label_and_prefetch():
    env = {
        "PYTEST_DOCKERNET_LEASE": "5",
        "PYTEST_DOCKERNET_ENGINES": "unix:///a.sock, tcp://b:2376,unix:///a.sock",
        "PYTEST_DOCKERNET_DRIVER": "Overlay",
        "PYTEST_DOCKERNET_SWEEP_LABEL": "team=qa",
        "PYTEST_DOCKERNET_PREFETCH": "off",
    }
    settings = resolve(NONE, env, NONE)
    assert settings.lease == 5.0
    assert settings.engines == ("unix:///a.sock", "tcp://b:2376")
    assert settings.driver == "overlay"
    assert settings.sweep_label == ("team", "qa")
    assert settings.prefetch is False
    assert resolve({"lease": "0"}, {}, NONE).lease == 0.0
    assert resolve(NONE, {}, {"engines": ["unix:///x", "ssh://me@host"]}).engines == (
        "unix:///x",
        "ssh://me@host",
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "lease",
            "-1",
            "--dockernet-lease: '-1' is not valid; expected a number of seconds, 0 (no lease) or more",
        ),
        ("engines", ["host:2375"], "--dockernet-engine: 'host:2375' is not an engine URL"),
        ("driver", "macvlan", "--dockernet-driver: 'macvlan' is not a network driver the plugin uses"),
        ("sweep_label", "a=1,b=2", "--dockernet-sweep-label: 'a=1,b=2' is not valid; expected one KEY=VALUE"),
    ],
)
def test_bad_new_settings_are_one_sentence_naming_the_option(key, value, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        resolve({key: value}, {}, NONE)
