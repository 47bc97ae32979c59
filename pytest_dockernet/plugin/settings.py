"""The plugin's settings, from the command line, the environment and the ini file.

Precedence: command-line option, then ``PYTEST_DOCKERNET_*`` environment variable, then
ini value, then default. A bad value is reported naming the source it came from.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Network, IPv6Network
from typing import Any, TypeVar

from ..core.faults import DEFAULT_FAULT_IMAGE, FAULT_IMAGE_ENV
from ..engine.connection import DEFAULT_TIMEOUT as DEFAULT_ENGINE_TIMEOUT
from ..engine.naming import DEFAULT_PREFIX, HOST_ENV, LABEL_PREFIX, check_prefix
from ..engine.statedir import STATE_DIR_ENV
from ..engine.subnets import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_POOLS,
    DEFAULT_POOLS6,
    DEFAULT_SUBNET_SIZE,
    check_pools_fit,
    parse_pools,
    parse_pools6,
)
from ..runs.cli import ENGINES_ENV, SWEEP_LABEL_ENV
from ..runs.lease import DEFAULT_LEASE_SECONDS

T = TypeVar("T")

HELP = {
    "prefix": f"first part of every network and container name (default: {DEFAULT_PREFIX})",
    "pool": "IPv4 CIDR to carve network subnets from; repeat or comma-separate for several"
    f" (default: {', '.join(map(str, DEFAULT_POOLS))})",
    "subnet_size": f"prefix length of each network's subnet (default: {DEFAULT_SUBNET_SIZE})",
    "keep": "keep networks and containers after the tests, for debugging; prints how to remove them",
    "lock_timeout": f"seconds to wait for the subnet allocation lock (default: {DEFAULT_LOCK_TIMEOUT:g})",
    "pool_timeout": "seconds a full subnet pool is waited for while networks of other processes (other"
    " workers, other runs sharing the engine) hold it; a pool held only by this process fails at once"
    f" (default: {DEFAULT_POOL_TIMEOUT:g}; 0: no wait)",
    "log_lines": "how many log lines of each service a failed test's report shows (default: 20; 0: none)",
    "sweep": "whether to remove, at start, what dead earlier runs of this host left on the engine"
    " (the start-up sweep; default: true)",
    "no_sweep": "do not remove, at start, what dead earlier runs of this host left on the engine"
    " (the start-up sweep is on by default)",
    "prefetch": "whether to create the next test's docker_network while the test before it runs"
    " (default: true)",
    "no_prefetch": "do not create the next test's docker_network while the test before it runs"
    " (prefetching is on by default)",
    "engine_timeout": "seconds each call to the Docker engine may take before the engine counts as"
    f" frozen (default: {DEFAULT_ENGINE_TIMEOUT:g})",
    "pool6": "IPv6 CIDR to carve the /64 of each dual-stack network (ipv6=True) from; repeat or"
    f" comma-separate for several (default: {', '.join(map(str, DEFAULT_POOLS6))})",
    "hermetic": "make every network hermetic by default: names its DNS does not know fail instead of"
    " being forwarded to the host's resolvers (default: off)",
    "skip_without_engine": "skip, instead of failing, the tests that need a Docker engine when none"
    " answers, with the reason in the skip message (default: off)",
    "lease": "seconds the run's lease on the engine lives without renewal: once it has expired, runs"
    f" of other hosts sharing the engine sweep this run's leftovers (default: {DEFAULT_LEASE_SECONDS:g}; 0: no lease)",
    "engines": "a Docker engine URL (unix://, tcp://, ssh://) for this run; repeat, or comma-separate,"
    " for several: xdist worker gwN uses engine N modulo their number (default: the environment's"
    " one engine)",
    "driver": "the driver of the plugin's networks: bridge, or overlay on an engine that is a swarm"
    " manager (attachable overlay networks; default: bridge)",
    "sweep_label": "sweep (at start-up) only dead runs carrying this label KEY=VALUE, for engines"
    " shared with runs that are not yours (default: every dead run)",
    "fault_image": "the image of the short-lived helpers that put network faults (cut, impair,"
    " partition) in services' namespaces: it needs sh, iptables (nft) and iproute2's tc"
    f" (default: {DEFAULT_FAULT_IMAGE})",
    "labels": "extra label KEY=VALUE on every network and container of the run; repeat, or"
    " comma-separate, for several (default: none)",
}
DRIVERS = ("bridge", "overlay")
ENGINE_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://", "http://", "https://")
BOOL_WORDS = "one of 1/0, true/false, yes/no, on/off"


@dataclass(frozen=True)
class Option:
    """How one setting is given: its command-line form, its ini type, what a valid value is."""

    key: str
    metavar: str | None
    """None for a flag."""
    ini_type: str | None
    """pytest's ini type (``bool``, ``int``, ``float``, ``args``), or None for a string."""
    expected: str
    repeatable: bool = False


OPTIONS = (
    Option("prefix", "PREFIX", None, "1-16 letters, digits, '_', '.' and '-'"),
    Option("pool", "CIDR", "args", "IPv4 CIDRs such as 10.199.0.0/16", repeatable=True),
    Option("subnet_size", "N", "int", "a prefix length such as 26"),
    Option("pool6", "CIDR6", "args", "IPv6 CIDRs such as fd00:d0c:4e7::/48", repeatable=True),
    Option("keep", None, "bool", BOOL_WORDS),
    Option("hermetic", None, "bool", BOOL_WORDS),
    Option("sweep", None, "bool", BOOL_WORDS),
    Option("prefetch", None, "bool", BOOL_WORDS),
    Option("skip_without_engine", None, "bool", BOOL_WORDS),
    Option("lock_timeout", "SECONDS", "float", "a number of seconds above 0"),
    Option("pool_timeout", "SECONDS", "float", "a number of seconds, 0 (no wait) or more"),
    Option("engine_timeout", "SECONDS", "float", "a number of seconds above 0"),
    Option("log_lines", "N", "int", "a whole number of lines, 0 or more"),
    Option("lease", "SECONDS", "float", "a number of seconds, 0 (no lease) or more"),
    Option("driver", "DRIVER", None, "bridge or overlay"),
    Option("sweep_label", "KEY=VALUE", None, "one KEY=VALUE"),
    Option("fault_image", "IMAGE", None, "an image reference such as nicolaka/netshoot:v0.13"),
    Option("labels", "KEY=VALUE", "args", "KEY=VALUE, comma-separated", repeatable=True),
    Option(
        "engines",
        "URL",
        "args",
        "engine URLs such as unix:///var/run/docker.sock or tcp://host:2376",
        repeatable=True,
    ),
)
SETTING_KEYS = tuple(option.key for option in OPTIONS)
EXPECTED = {option.key: option.expected for option in OPTIONS}
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names its source."""


@dataclass(frozen=True)
class Settings:
    """Validated settings of one pytest run."""

    prefix: str = DEFAULT_PREFIX
    pools: tuple[IPv4Network, ...] = DEFAULT_POOLS
    subnet_size: int = DEFAULT_SUBNET_SIZE
    keep: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    pool_timeout: float = DEFAULT_POOL_TIMEOUT
    sweep: bool = True
    prefetch: bool = True
    log_lines: int = 20
    engine_timeout: float = DEFAULT_ENGINE_TIMEOUT
    labels: tuple[tuple[str, str], ...] = ()
    pools6: tuple[IPv6Network, ...] = DEFAULT_POOLS6
    hermetic: bool = False
    skip_without_engine: bool = False
    lease: float = DEFAULT_LEASE_SECONDS
    engines: tuple[str, ...] = ()
    driver: str = "bridge"
    sweep_label: tuple[str, str] | None = None
    fault_image: str = DEFAULT_FAULT_IMAGE


def option_name(key: str) -> str:
    """``subnet_size`` -> ``--dockernet-subnet-size`` (``labels`` -> ``--dockernet-label``)."""
    singular = {"labels": "label", "engines": "engine"}
    return "--dockernet-" + singular.get(key, key.replace("_", "-"))


def env_name(key: str) -> str:
    """``subnet_size`` -> ``PYTEST_DOCKERNET_SUBNET_SIZE``."""
    return "PYTEST_DOCKERNET_" + key.upper()


def ini_name(key: str) -> str:
    """``subnet_size`` -> ``dockernet_subnet_size``."""
    return "dockernet_" + key


def _is_set(value: Any) -> bool:
    return value is not None and value != [] and value != ""


def _pick(
    key: str, cli: Mapping[str, Any], env: Mapping[str, str], ini: Mapping[str, Any]
) -> tuple[Any, str] | None:
    """The value of ``key`` from the first source that has one, and that source's name."""
    if _is_set(cli.get(key)):
        return cli[key], option_name(key)
    if env.get(env_name(key)) is not None:
        return env[env_name(key)], env_name(key)
    if _is_set(ini.get(key)):
        return ini[key], f"ini option {ini_name(key)}"
    return None


def _convert(value: Any, source: str, convert: Callable[[Any], T], expected: str) -> T:
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        detail = f" ({exc})" if str(exc) and "invalid literal" not in str(exc) else ""
        raise SettingsError(f"{source}: {value!r} is not valid; expected {expected}{detail}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError("")


def _to_pool_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(item) for item in value]


def _to_labels(value: Any) -> tuple[tuple[str, str], ...]:
    items = [value] if isinstance(value, str) else [str(item) for item in value]
    labels = []
    for part in (part.strip() for item in items for part in item.split(",")):
        if not part:
            continue
        key, equals, text = part.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"{part!r} is not KEY=VALUE")
        if key.strip().startswith(LABEL_PREFIX):
            raise ValueError(f"{key.strip()!r}: keys starting with {LABEL_PREFIX!r} are the plugin's own")
        labels.append((key.strip(), text.strip()))
    return tuple(labels)


def _to_count(value: Any) -> int:
    count = int(value)
    if count < 0:
        raise ValueError("it must not be negative")
    return count


def _to_timeout(value: Any) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError("it must be more than 0")
    return seconds


def _to_engines(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else [str(item) for item in value]
    engines = []
    for url in (part.strip() for item in items for part in item.split(",")):
        if not url:
            continue
        if not url.startswith(ENGINE_SCHEMES):
            raise ValueError(
                f"{url!r} is not an engine URL; expected one starting with {', '.join(ENGINE_SCHEMES)},"
                " such as unix:///var/run/docker.sock or tcp://host:2376"
            )
        if url not in engines:
            engines.append(url)
    if not engines:
        raise ValueError(f"{value!r} holds no engine URL; expected URLs such as unix:///var/run/docker.sock")
    return tuple(engines)


def _to_seconds(value: Any) -> float:
    seconds = float(value)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError("it must be 0 or more, and finite")
    return seconds


ENV_PREFIX = "PYTEST_DOCKERNET_"
# Variables read elsewhere than from a setting: the host name labels carry, the state
# directory, the fault helper image, and the CLI's defaults.
OTHER_ENV = {HOST_ENV, STATE_DIR_ENV, FAULT_IMAGE_ENV, ENGINES_ENV, SWEEP_LABEL_ENV}


def check_env_names(env: Mapping[str, str]) -> None:
    """Refuse a ``PYTEST_DOCKERNET_*`` variable that no setting reads (a misspelt one would
    be ignored), naming the closest real one."""
    known = {env_name(key) for key in SETTING_KEYS} | OTHER_ENV
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SettingsError(
                f"environment variable {name} is not a pytest-dockernet setting{hint}"
                " (README, Options, lists every variable)"
            )


def resolve(cli: Mapping[str, Any], env: Mapping[str, str], ini: Mapping[str, Any]) -> Settings:
    """Build :class:`Settings` from the three sources, keyed by setting name."""
    check_env_names(env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in SETTING_KEYS:
        picked = _pick(key, cli, env, ini)
        if picked is not None:
            values[key], sources[key] = picked

    settings = Settings()
    if "prefix" in values:
        prefix = str(values["prefix"])
        problem = check_prefix(prefix)
        if problem:
            raise SettingsError(f"{sources['prefix']}: prefix {prefix!r} {problem}")
        settings = replace(settings, prefix=prefix)
    for key, field_name, parse in (("pool", "pools", parse_pools), ("pool6", "pools6", parse_pools6)):
        if key in values:
            try:
                parsed = parse(_to_pool_list(values[key]))
            except ValueError as exc:
                raise SettingsError(f"{sources[key]}: {exc}") from None
            parsed_pools: dict[str, Any] = {field_name: parsed}
            settings = replace(settings, **parsed_pools)
    if "subnet_size" in values:
        size = _convert(values["subnet_size"], sources["subnet_size"], int, EXPECTED["subnet_size"])
        settings = replace(settings, subnet_size=size)
    flags: dict[str, Any] = {}
    for flag in ("keep", "sweep", "prefetch", "hermetic", "skip_without_engine"):
        if flag in values:
            flags[flag] = _convert(values[flag], sources[flag], _to_bool, BOOL_WORDS)
    settings = replace(settings, **flags)
    if "log_lines" in values:
        lines = _convert(values["log_lines"], sources["log_lines"], _to_count, EXPECTED["log_lines"])
        settings = replace(settings, log_lines=lines)
    seconds: dict[str, Any] = {}
    for key in ("lock_timeout", "engine_timeout"):
        if key in values:
            seconds[key] = _convert(values[key], sources[key], _to_timeout, EXPECTED[key])
    settings = replace(settings, **seconds)
    if "lease" in values:
        lease = _convert(values["lease"], sources["lease"], _to_seconds, EXPECTED["lease"])
        settings = replace(settings, lease=lease)
    if "pool_timeout" in values:
        waited = _convert(
            values["pool_timeout"], sources["pool_timeout"], _to_seconds, EXPECTED["pool_timeout"]
        )
        settings = replace(settings, pool_timeout=waited)
    if "sweep_label" in values:
        pairs = _convert(values["sweep_label"], sources["sweep_label"], _to_labels, EXPECTED["sweep_label"])
        if len(pairs) != 1:
            raise SettingsError(
                f"{sources['sweep_label']}: {values['sweep_label']!r} is not valid; expected one KEY=VALUE"
            )
        settings = replace(settings, sweep_label=pairs[0])
    if "driver" in values:
        driver = str(values["driver"]).strip().lower()
        if driver not in DRIVERS:
            raise SettingsError(
                f"{sources['driver']}: {values['driver']!r} is not a network driver the plugin uses;"
                f" expected {EXPECTED['driver']}"
            )
        settings = replace(settings, driver=driver)
    if "engines" in values:
        try:
            engines = _to_engines(values["engines"])
        except ValueError as exc:
            raise SettingsError(f"{sources['engines']}: {exc}") from None
        settings = replace(settings, engines=engines)
    if "fault_image" in values:
        image = str(values["fault_image"]).strip()
        if not image:
            raise SettingsError(
                f"{sources['fault_image']}: the fault image is empty; expected {EXPECTED['fault_image']}"
            )
        settings = replace(settings, fault_image=image)
    if "labels" in values:
        labels = _convert(values["labels"], sources["labels"], _to_labels, EXPECTED["labels"])
        settings = replace(settings, labels=labels)

    problem = check_pools_fit(settings.pools, settings.subnet_size)
    if problem:
        where = sources.get("subnet_size") or sources.get("pool") or "defaults"
        raise SettingsError(f"{where}: {problem}")
    return settings
