"""Compose files on the plugin's own isolated networks: no ``docker compose``, nothing left behind.

A compose file is read with PyYAML and started through the plugin's networks, services,
jobs and volumes, so every resource carries the run's labels: teardown, the reaper, the
sweep and ``pytest-dockernet ls/prune`` cover a stack like anything else. Each compose
network becomes a plugin :class:`Network` (a file without ``networks:`` gets one,
``default``); every service is reachable by its name and its ``aliases:`` on each network
it joins. Services start concurrently, level by level in ``depends_on`` order. A key this
module does not support is an error naming the key and the service, never ignored.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..engine.images import build_image
from ..errors import ComposeError, ServiceStartError
from . import wait as waits
from .service import ExecResult, Service
from .specs import ServiceSpec
from .together import first_error, run_together

if TYPE_CHECKING:
    from .manager import NetworkManager
    from .network import Network
    from .volumes import Volume

SERVICE_KEYS = {
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "healthcheck",
    "depends_on",
    "networks",
}
TOP_KEYS = {"services", "networks", "volumes", "version", "name"}
NETWORK_KEYS = {"internal"}
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
DEFAULT_NETWORK = "default"
# A compose file larger than this is refused before it is read.
MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass
class ComposeService:
    """One service of a compose file, as read."""

    name: str
    spec: dict[str, Any]
    networks: dict[str, dict[str, Any]]
    depends_on: dict[str, str]


@dataclass
class ComposeFile:
    """A compose file, read and checked."""

    path: Path
    services: dict[str, ComposeService]
    networks: dict[str, dict[str, Any]]
    volumes: list[str]


@dataclass
class ComposeStack:
    """A started compose file: ``stack["name"]`` is the :class:`Service` of service ``name``."""

    services: dict[str, Service] = field(default_factory=dict)
    """Long-running services, by compose name."""
    jobs: dict[str, ExecResult] = field(default_factory=dict)
    """Services others wait for with ``service_completed_successfully``: what they returned."""
    networks: dict[str, Network] = field(default_factory=dict)
    """The plugin network standing for each compose network."""
    volumes: dict[str, Volume] = field(default_factory=dict)
    """The plugin volume standing for each named compose volume."""

    def __getitem__(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services)) or "none"
            raise KeyError(f"no service {name!r} in this stack (its services: {known})") from None


def load(path: str | Path) -> ComposeFile:
    """Read and check a compose file; raise :class:`ComposeError` for anything unsupported."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ComposeError(
                f"compose file {path} has {size:,} bytes, more than the {MAX_FILE_BYTES:,} a compose"
                " file of a test may have"
            )
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ComposeError(f"cannot read compose file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ComposeError(f"compose file {path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise ComposeError(f"compose file {path} has no 'services:' mapping")
    _no_interpolation(path, document)
    _no_unknown(path, "the file", document, TOP_KEYS)
    networks = {name: dict(config or {}) for name, config in (document.get("networks") or {}).items()}
    for name, config in networks.items():
        _no_unknown(path, f"network {name!r}", config, NETWORK_KEYS)
    if not networks:
        networks = {DEFAULT_NETWORK: {}}
    volumes = list((document.get("volumes") or {}).keys())
    services = {}
    for name, spec in document["services"].items():
        spec = dict(spec or {})
        _no_unknown(path, f"service {name!r}", spec, SERVICE_KEYS)
        if "image" not in spec and "build" not in spec:
            raise ComposeError(f"compose file {path}: service {name!r} has neither 'image' nor 'build'")
        services[name] = ComposeService(
            name, spec, _service_networks(path, name, spec, networks), _depends_on(path, name, spec)
        )
    for service in services.values():
        for needed in service.depends_on:
            if needed not in services:
                raise ComposeError(
                    f"compose file {path}: service {service.name!r} depends on unknown {needed!r}"
                )
    return ComposeFile(path, services, networks, volumes)


def _no_interpolation(path: Path, document: Any) -> None:
    # Each node once: YAML anchors make one node stand in many places, and a walk that
    # follows every reference grows exponentially with a file's nesting ("billion laughs").
    seen: set[int] = set()
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, (dict, list)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            pending.extend(value.values() if isinstance(value, dict) else value)
        elif isinstance(value, str) and re.search(r"(?<!\$)\$\{", value):
            raise ComposeError(
                f"compose file {path}: {value!r} uses ${{...}} interpolation, which pytest-dockernet does"
                " not do; write the value, or use environment/env_file"
            )


def _no_unknown(path: Path, where: str, mapping: dict[str, Any], known: set[str]) -> None:
    # x-* keys are the compose specification's extensions, the users' own: never refused.
    unknown = sorted(key for key in set(mapping) - known if not str(key).startswith("x-"))
    if unknown:
        raise ComposeError(
            f"compose file {path}: {where} uses {unknown[0]!r}, which pytest-dockernet does not"
            f" support (supported: {', '.join(sorted(known))})"
        )


def _service_networks(
    path: Path, name: str, spec: dict[str, Any], networks: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    given = spec.get("networks") or [DEFAULT_NETWORK if DEFAULT_NETWORK in networks else next(iter(networks))]
    joined = (
        {net: {} for net in given}
        if isinstance(given, list)
        else {k: dict(v or {}) for k, v in given.items()}
    )
    for network, config in joined.items():
        if network not in networks:
            raise ComposeError(f"compose file {path}: service {name!r} joins unknown network {network!r}")
        _no_unknown(path, f"service {name!r} on network {network!r}", config, {"aliases", "ipv4_address"})
    return joined


def _depends_on(path: Path, name: str, spec: dict[str, Any]) -> dict[str, str]:
    given = spec.get("depends_on") or []
    if isinstance(given, list):
        return dict.fromkeys(given, "service_started")
    found = {}
    for needed, config in given.items():
        condition = (config or {}).get("condition", "service_started")
        if condition not in CONDITIONS:
            raise ComposeError(
                f"compose file {path}: service {name!r} waits for {needed!r} with condition"
                f" {condition!r}; supported: {', '.join(CONDITIONS)}"
            )
        found[needed] = condition
    return found


def start(compose: ComposeFile, manager: NetworkManager, *, test: str | None = None) -> ComposeStack:
    """Create the file's networks and volumes, then start its services in dependency order.

    What started is in the returned stack even when a later service fails: release it
    with :func:`release` either way.
    """
    stack = ComposeStack()
    try:
        _start_into(stack, compose, manager, test)
    except BaseException:
        release(stack, manager)
        raise
    return stack


def _start_into(stack: ComposeStack, compose: ComposeFile, manager: NetworkManager, test: str | None) -> None:
    for name, config in compose.networks.items():
        stack.networks[name] = manager.create_network(test=test, internal=bool(config.get("internal")))
    for name in compose.volumes:
        stack.volumes[name] = manager.create_volume(
            test=test, labels={"pytest-dockernet-compose.volume": name}
        )
    healthy_needed = {
        n for s in compose.services.values() for n, c in s.depends_on.items() if c == "service_healthy"
    }
    jobs = {
        n for s in compose.services.values() for n, c in s.depends_on.items() if c.endswith("successfully")
    }
    pending = dict(compose.services)
    while pending:
        ready = [
            s for s in pending.values() if all(n in stack.services or n in stack.jobs for n in s.depends_on)
        ]
        if not ready:
            raise ComposeError(
                f"compose file {compose.path}: services {sorted(pending)} depend on each other in a cycle"
            )
        futures = run_together(
            [partial(_start_one, compose, stack, s, s.name in healthy_needed, s.name in jobs) for s in ready],
            name="dockernet-compose",
        )
        error = first_error(futures)
        if error is not None:
            raise error
        for service in ready:
            del pending[service.name]


def _start_one(
    compose: ComposeFile,
    stack: ComposeStack,
    service: ComposeService,
    healthy: bool,
    job: bool,
    cancel: threading.Event,
) -> None:
    spec = service.spec
    network_names = list(service.networks)
    home = stack.networks[network_names[0]]
    home_config = service.networks[network_names[0]]
    image = _image(compose, service, home)
    kwargs: dict[str, Any] = {
        "environment": _environment(compose, service),
        "volumes": _volumes(compose, service, stack) or None,
        "alias": [service.name, *home_config.get("aliases", [])],
    }
    if "entrypoint" in spec:
        kwargs["entrypoint"] = spec["entrypoint"]
    if spec.get("ports"):
        kwargs["ports"] = _ports(compose, service)
    if spec.get("healthcheck"):
        kwargs["healthcheck"] = _healthcheck(compose, service)
    command = spec.get("command")
    if job:
        result = home.run_job(image, command, **kwargs)
        if not result.ok:
            raise ServiceStartError(
                f"compose service {service.name!r} exited with status {result.exit_code}, but services"
                f" wait for it to complete successfully; its output:\n{result.output.rstrip() or '(none)'}"
            )
        stack.jobs[service.name] = result
        return
    if home_config.get("ipv4_address"):
        kwargs["ip"] = home_config["ipv4_address"]
    wanted = ServiceSpec.of(
        image, command, name=service.name, wait=waits.healthy() if healthy else None, **kwargs
    )
    started = home.start(wanted, cancel=cancel)
    for network in network_names[1:]:
        config = service.networks[network]
        stack.networks[network].connect(
            started, aliases=[service.name, *config.get("aliases", [])], ip=config.get("ipv4_address")
        )
    stack.services[service.name] = started


def _image(compose: ComposeFile, service: ComposeService, network: Network) -> str:
    spec = service.spec
    if "build" not in spec:
        return str(spec["image"])
    build = spec["build"]
    context = build if isinstance(build, str) else (build or {}).get("context", ".")
    if isinstance(build, dict):
        _no_unknown(compose.path, f"service {service.name!r} build", build, {"context"})
    directory = (compose.path.parent / context).resolve()
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    tag = str(spec.get("image") or f"dockernet-compose/{service.name}:{digest}")
    build_image(network.client, directory, tag)
    return tag


def _environment(compose: ComposeFile, service: ComposeService) -> dict[str, str]:
    environment: dict[str, str] = {}
    env_files = service.spec.get("env_file") or []
    for env_file in [env_files] if isinstance(env_files, str) else env_files:
        path = compose.path.parent / env_file
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ComposeError(
                f"compose file {compose.path}: service {service.name!r} env_file {env_file!r}: {exc.strerror or exc}"
            ) from None
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                environment[key.strip()] = value.strip()
    given = service.spec.get("environment") or {}
    if isinstance(given, list):
        given = dict(item.split("=", 1) if "=" in item else (item, "") for item in given)
    environment.update({str(key): "" if value is None else str(value) for key, value in given.items()})
    return environment


def _volumes(compose: ComposeFile, service: ComposeService, stack: ComposeStack) -> list[str]:
    mounts = []
    for entry in service.spec.get("volumes") or []:
        if not isinstance(entry, str):
            raise ComposeError(
                f"compose file {compose.path}: service {service.name!r} volumes: write {entry!r} as"
                " 'source:target[:ro]' (the long syntax is not supported)"
            )
        source, _, rest = entry.partition(":")
        if not rest:
            raise ComposeError(
                f"compose file {compose.path}: service {service.name!r} volume {entry!r} has no target;"
                " anonymous volumes are not supported"
            )
        if source in stack.volumes:
            source = stack.volumes[source].name
        elif source.startswith((".", "/", "~")):
            source = str((compose.path.parent / Path(source).expanduser()).resolve())
        else:
            raise ComposeError(
                f"compose file {compose.path}: service {service.name!r} mounts volume {source!r},"
                " which the file's top-level 'volumes:' does not declare"
            )
        mounts.append(f"{source}:{rest}")
    return mounts


_PORT = re.compile(
    r"^(?:(?P<ip>[\d.]+):)?(?:(?P<published>\d+)?:)?(?P<target>\d+)(?:/(?P<protocol>tcp|udp))?$"
)


def _ports(compose: ComposeFile, service: ComposeService) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for entry in service.spec["ports"]:
        match = _PORT.match(str(entry))
        if not match:
            raise ComposeError(
                f"compose file {compose.path}: service {service.name!r} port {entry!r} is not"
                " [ip:][published:]target[/protocol]"
            )
        published = int(match["published"]) if match["published"] else None
        key = f"{match['target']}/{match['protocol'] or 'tcp'}"
        ports[key] = (match["ip"], published) if match["ip"] else published
    return ports


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)")
_UNIT_NANOSECONDS = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}


def _duration(compose: ComposeFile, service: ComposeService, text: Any) -> int:
    parts = _DURATION.findall(str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text):
        raise ComposeError(
            f"compose file {compose.path}: service {service.name!r} healthcheck duration {text!r}"
            " is not like 1m30s, 5s or 500ms"
        )
    return int(sum(float(amount) * _UNIT_NANOSECONDS[unit] for amount, unit in parts))


def _healthcheck(compose: ComposeFile, service: ComposeService) -> dict[str, Any]:
    given = dict(service.spec["healthcheck"])
    _no_unknown(
        compose.path,
        f"service {service.name!r} healthcheck",
        given,
        {"test", "interval", "timeout", "retries", "start_period"},
    )
    test = given.get("test")
    check: dict[str, Any] = {"test": ["CMD-SHELL", test] if isinstance(test, str) else test}
    for key in ("interval", "timeout", "start_period"):
        if key in given:
            check[key] = _duration(compose, service, given[key])
    if "retries" in given:
        check["retries"] = int(given["retries"])
    return check


def release(stack: ComposeStack, manager: NetworkManager, *, later: bool = False) -> None:
    """Remove (or keep) what :func:`start` made: networks with their services, then volumes."""
    for network in reversed(list(stack.networks.values())):
        (manager.release_later if later else manager.release)(network)
    for volume in stack.volumes.values():
        (manager.release_volume_later if later else manager.release_volume)(volume)
