"""What a compose file asks for: read by Docker Compose's own ``config``, checked key by key.

:func:`load` hands the files to Compose v2 (:mod:`pytest_dockernet.engine.compose_cli`),
which interpolates, merges, resolves ``extends``, ``include``, profiles and relative paths,
and prints the canonical model. Every key of that model is then honoured (mapped to the
engine's create arguments), accepted (with a reason it needs nothing, in :data:`ACCEPTED`),
or refused (it would break the test's isolation or the plugin's guarantees, in
:data:`REFUSED`). Every problem of a file is reported at once, in one :class:`ComposeError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

import docker.types
import yaml

from ..engine.compose_cli import canonical_model
from ..errors import ComposeError

# A compose file larger than this is refused before it is read.
MAX_FILE_BYTES = 4 * 1024 * 1024
# A file whose anchors and aliases expand past this many YAML nodes is refused at once:
# Compose itself would take minutes on it ("billion laughs").
MAX_EXPANDED_NODES = 1_000_000
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
DEFAULT_NETWORK = "default"
SECRETS_DIRECTORY = "/run/secrets"

# Service keys mapped onto the container's create arguments (docker-py's names) as they are.
DIRECT = {
    "user": "user",
    "working_dir": "working_dir",
    "hostname": "hostname",
    "domainname": "domainname",
    "stop_signal": "stop_signal",
    "init": "init",
    "platform": "platform",
    "privileged": "privileged",
    "read_only": "read_only",
    "tty": "tty",
    "stdin_open": "stdin_open",
    "cap_add": "cap_add",
    "cap_drop": "cap_drop",
    "security_opt": "security_opt",
    "sysctls": "sysctls",
    "dns": "dns",
    "dns_search": "dns_search",
    "dns_opt": "dns_opt",
    "group_add": "group_add",
    "oom_score_adj": "oom_score_adj",
    "pids_limit": "pids_limit",
    "cpu_shares": "cpu_shares",
    "cpuset": "cpuset_cpus",
    "cgroup_parent": "cgroup_parent",
    "runtime": "runtime",
    "ipc": "ipc_mode",
    "pid": "pid_mode",
    "uts": "uts_mode",
    "userns_mode": "userns_mode",
    "mac_address": "mac_address",
}
BYTES = {
    "shm_size": "shm_size",
    "mem_limit": "mem_limit",
    "mem_reservation": "mem_reservation",
    "memswap_limit": "memswap_limit",
}
# Service keys with a mapping of their own (see ComposeService and _service).
MAPPED = {
    "image", "build", "command", "entrypoint", "environment", "networks", "depends_on",
    "ports", "volumes", "tmpfs", "healthcheck", "secrets", "configs", "restart", "labels",
    "ulimits", "extra_hosts", "devices", "logging", "cpus",
    "stop_grace_period", "deploy", "scale", "container_name",
}  # fmt: skip
ACCEPTED = {
    "container_name": "names are unique per run, so the container gets the plugin's name and"
    " the given name is one more alias beside the service's own",
    "expose": "containers on a network reach every port of each other: nothing to open",
    "profiles": "the profiles given to load() or compose_fixture(profiles=...) choose the services",
    "pull_policy": "images are pulled when missing, built when the service has build:",
    "develop": "watch is a tool of the edit loop, not of a test",
    "attach": "a failed test's report shows the services' last log lines",
    "env_file": "read by Compose into environment",
    "extends": "resolved by Compose",
    "label_file": "read by Compose into labels",
}
REFUSED = {
    "network_mode": "it takes the container off the test's own networks (pytest-dockernet puts"
    " every service on them); use networks:",
    "links": "services reach each other by name on their networks; give other names with"
    " networks: <name>: aliases:",
    "external_links": "a test reaches only its own services",
    "volumes_from": "share a named volume instead",
    "use_api_socket": "it hands the engine's socket, and so every other run's containers, to the service",
    "gpus": "GPU requests are not supported",
    "post_start": "lifecycle hooks are not supported; run the command with exec() in the test",
    "pre_stop": "lifecycle hooks are not supported",
    "provider": "services made by providers are not containers the plugin can label and reap",
    "credential_spec": "Windows containers are not supported",
    "isolation": "Windows containers are not supported",
    "annotations": "container annotations are not supported",
    "blkio_config": "block IO limits are not supported",
    "oom_kill_disable": "not supported",
    "storage_opt": "not supported",
    "device_cgroup_rules": "not supported",
    "cpu_count": "not supported: use cpus", "cpu_percent": "not supported: use cpus",
    "cpu_period": "not supported: use cpus", "cpu_quota": "not supported: use cpus",
    "cpu_rt_period": "not supported", "cpu_rt_runtime": "not supported",
    "mem_swappiness": "not supported", "cgroup": "not supported",
}  # fmt: skip
HOST_NAMESPACES = ("pid", "ipc", "uts", "userns_mode")
TOP_KEYS = {"name", "services", "networks", "volumes", "secrets", "configs", "version", "include"}
NETWORK_KEYS = {"name", "driver", "driver_opts", "ipam", "internal", "attachable", "labels", "enable_ipv6"}
VOLUME_KEYS = {"name", "driver", "driver_opts", "labels"}
FILE_KEYS = {"name", "file"}  # of a secret or config


@dataclass
class Build:
    """How a service's image is built: a context directory inside the file's directory."""

    context: Path
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = field(default_factory=dict)
    target: str | None = None


@dataclass
class Mount:
    """A volume of a service: ``bind`` (a host path), ``volume`` (named; "" anonymous) or ``tmpfs``."""

    kind: str
    source: str
    target: str
    read_only: bool = False


@dataclass
class ComposeService:
    """One service of a compose file, mapped: what its container is created with."""

    name: str
    image: str | None
    build: Build | None
    command: list[str] | None
    entrypoint: list[str] | None
    environment: dict[str, str]
    networks: dict[str, dict[str, Any]]
    """Each network joined, with ``aliases`` and ``ipv4_address``."""
    depends_on: dict[str, str]
    """Each service waited for, with its condition."""
    mounts: list[Mount]
    ports: dict[str, Any]
    healthcheck: dict[str, Any] | None
    options: dict[str, Any]
    """Further create arguments, with docker-py's names (``restart_policy``, ``nano_cpus``, ...)."""
    aliases: list[str] = field(default_factory=list)
    """Names it has on every network: its own, and ``container_name``."""


@dataclass
class ComposeNetwork:
    """A network of a compose file: a plugin network on a subnet from the pool."""

    name: str
    internal: bool = False
    ipv6: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class ComposeFile:
    """A compose file (or several, merged), read and checked."""

    path: Path
    services: dict[str, ComposeService]
    networks: dict[str, ComposeNetwork]
    volumes: dict[str, dict[str, Any]]
    """Each named volume, with ``labels``, ``driver`` and ``driver_opts``."""
    files: tuple[Path, ...] = ()

    def addresses(self, network: str) -> dict[str, IPv4Address]:
        """The static ``ipv4_address`` of each service on ``network``."""
        return {
            name: IPv4Address(config["ipv4_address"])
            for name, config in ((n, s.networks.get(network)) for n, s in self.services.items())
            if config and config.get("ipv4_address")
        }


class Problems:
    """Every problem of a compose file, gathered so that one :class:`ComposeError` names them all."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.found: list[str] = []

    def add(self, where: str, text: str) -> None:
        """Note that ``where`` (a service, a network, ...) has problem ``text``."""
        self.found.append(f"{where}: {text}")

    def raise_any(self) -> None:
        """Raise one :class:`ComposeError` naming every problem noted, if any was."""
        __tracebackhide__ = True
        if len(self.found) == 1:
            raise ComposeError(f"compose file {self.shown}: {self.found[0]}")
        if self.found:
            listed = "\n".join(f"  - {problem}" for problem in self.found)
            raise ComposeError(f"compose file {self.shown} has {len(self.found)} problems:\n{listed}")


def load(
    path: str | Path | Sequence[str | Path],
    *,
    profiles: Sequence[str] = (),
    env_files: Sequence[str | Path] = (),
    environment: Mapping[str, str] | None = None,
) -> ComposeFile:
    """Read compose file ``path`` (or several, later ones overriding) with Docker Compose's
    ``config``, and check it; raise one :class:`ComposeError` naming every problem.

    ``profiles`` turns on services of those profiles; ``env_files`` are read for
    interpolation besides the ``.env`` next to the first file; ``environment`` replaces
    this process's environment for interpolation. Relative paths start at the first
    file's directory.
    """
    __tracebackhide__ = True
    files = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if not files:
        raise ComposeError("no compose file given")
    files = [file.absolute() for file in files]
    for file in files:
        _check_readable(file)
    model = canonical_model(
        files, profiles=profiles, env_files=[Path(e) for e in env_files], environment=environment
    )
    return _checked(files, model)


def _check_readable(path: Path) -> None:
    __tracebackhide__ = True
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ComposeError(
                f"compose file {path} has {size:,} bytes, more than the {MAX_FILE_BYTES:,} a compose"
                " file of a test may have"
            )
        text = path.read_text()
    except FileNotFoundError:
        raise ComposeError(
            f"compose file {path} does not exist (compose_fixture takes a relative path from"
            " pytest's rootdir)"
        ) from None
    except OSError as exc:
        raise ComposeError(f"cannot read compose file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ComposeError(f"compose file {path} is not UTF-8 text") from None
    try:
        nodes = [node for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node is not None]
    except yaml.YAMLError as exc:
        raise ComposeError(f"compose file {path} is not valid YAML: {exc}") from None
    if sum(_expanded_size(node, {}) for node in nodes) > MAX_EXPANDED_NODES:
        raise ComposeError(
            f"compose file {path} expands its YAML aliases to more than {MAX_EXPANDED_NODES:,}"
            " nodes (an alias bomb?): it is not read"
        )


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    # Each node is counted once with memo: an alias is the same node object as its anchor.
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = min(size, MAX_EXPANDED_NODES + 1)
    return sizes[id(node)]


def _checked(files: list[Path], model: dict[str, Any]) -> ComposeFile:
    __tracebackhide__ = True
    problems = Problems(", ".join(map(str, files)))
    directory = files[0].parent
    _no_unknown(problems, "the file", model, TOP_KEYS)
    networks = {}
    for name, config in (model.get("networks") or {}).items():
        networks[name] = _network(problems, name, config or {})
    volumes = {}
    for name, config in (model.get("volumes") or {}).items():
        volumes[name] = _volume(problems, name, config or {})
    files_of = {
        kind: {
            name: _file_of(problems, kind, name, config or {})
            for name, config in (model.get(kind) or {}).items()
        }
        for kind in ("secrets", "configs")
    }
    services = {}
    for name, config in (model.get("services") or {}).items():
        services[name] = _service(problems, name, config or {}, directory, volumes, files_of)
    if not services:
        problems.add("the file", "it has no services (are they all in profiles not asked for?)")
    used = {network for service in services.values() for network in service.networks}
    networks = {name: network for name, network in networks.items() if name in used} or {
        DEFAULT_NETWORK: ComposeNetwork(DEFAULT_NETWORK)
    }
    for service in services.values():
        for needed, condition in service.depends_on.items():
            if needed not in services:
                problems.add(f"service {service.name!r}", f"depends on unknown {needed!r}")
            if condition not in CONDITIONS:
                problems.add(
                    f"service {service.name!r}",
                    f"waits for {needed!r} with condition {condition!r}; supported: {', '.join(CONDITIONS)}",
                )
    problems.raise_any()
    return ComposeFile(files[0], services, networks, volumes, tuple(files))


def _no_unknown(problems: Problems, where: str, mapping: Mapping[str, Any], known: set[str]) -> None:
    # x-* keys are the compose specification's extensions, the users' own: never refused.
    for key in sorted(str(key) for key in mapping if key not in known and not str(key).startswith("x-")):
        problems.add(
            where, f"{key!r} is not supported by pytest-dockernet (supported: {', '.join(sorted(known))})"
        )


def _network(problems: Problems, name: str, config: dict[str, Any]) -> ComposeNetwork:
    where = f"network {name!r}"
    if config.get("external"):
        problems.add(where, "external networks are refused: a test's services live on networks of its own")
        return ComposeNetwork(name)
    _no_unknown(problems, where, config, NETWORK_KEYS | {"external"})
    if config.get("driver") not in (None, "bridge", "overlay"):
        problems.add(where, f"driver {config['driver']!r} is not supported (bridge, or overlay on a swarm)")
    ipam = config.get("ipam") or {}
    if ipam.get("driver") not in (None, "default") or set(ipam) - {"driver", "config"}:
        problems.add(where, "only ipam config subnets are read (the plugin picks subnets from its pool)")
    return ComposeNetwork(
        name,
        internal=bool(config.get("internal")),
        ipv6=bool(config.get("enable_ipv6")),
        labels={str(k): str(v) for k, v in (config.get("labels") or {}).items()},
        options={str(k): str(v) for k, v in (config.get("driver_opts") or {}).items()},
    )


def _volume(problems: Problems, name: str, config: dict[str, Any]) -> dict[str, Any]:
    where = f"volume {name!r}"
    if config.get("external"):
        problems.add(
            where, "external volumes are refused: a test's volumes are its own, labelled and removed"
        )
    _no_unknown(problems, where, config, VOLUME_KEYS | {"external"})
    return {
        "labels": {str(k): str(v) for k, v in (config.get("labels") or {}).items()},
        "driver": config.get("driver") or "local",
        "driver_opts": {str(k): str(v) for k, v in (config.get("driver_opts") or {}).items()} or None,
    }


def _file_of(problems: Problems, kind: str, name: str, config: dict[str, Any]) -> str:
    where = f"{kind[:-1]} {name!r}"
    if not config.get("file"):
        problems.add(where, "only secrets and configs read from a file are supported (file: ./path)")
        return ""
    _no_unknown(problems, where, config, FILE_KEYS)
    return str(config["file"])


def _service(
    problems: Problems,
    name: str,
    config: dict[str, Any],
    directory: Path,
    volumes: dict[str, dict[str, Any]],
    files_of: dict[str, dict[str, str]],
) -> ComposeService:
    where = f"service {name!r}"
    for key in sorted(config):
        if key in REFUSED:
            problems.add(where, f"{key!r} is refused: {REFUSED[key]}")
        elif key in HOST_NAMESPACES and config[key] == "host":
            problems.add(where, f"{key}: host is refused: it shares the host's namespace with the service")
        elif not key.startswith("x-") and all(
            key not in known for known in (DIRECT, BYTES, MAPPED, ACCEPTED)
        ):
            problems.add(where, f"{key!r} is not supported by pytest-dockernet")
    for key in HOST_NAMESPACES:
        if str(config.get(key, "")).startswith(("service:", "container:")):
            problems.add(where, f"{key}: {config[key]} is not supported")
    options: dict[str, Any] = {DIRECT[k]: v for k, v in config.items() if k in DIRECT and v is not None}
    options.update({BYTES[k]: int(v) for k, v in config.items() if k in BYTES})
    if "cpus" in config:
        options["nano_cpus"] = int(float(config["cpus"]) * 1e9)
    if config.get("labels"):
        options["labels"] = {str(k): str(v) for k, v in config["labels"].items()}
    if config.get("ulimits"):
        options["ulimits"] = [_ulimit(k, v) for k, v in config["ulimits"].items()]
    if config.get("extra_hosts"):
        options["extra_hosts"] = [entry.replace("=", ":", 1) for entry in config["extra_hosts"]]
    if config.get("devices"):
        options["devices"] = [
            f"{d['source']}:{d.get('target') or d['source']}:{d.get('permissions') or 'rwm'}"
            for d in config["devices"]
        ]
    if config.get("logging"):
        logging = config["logging"]
        options["log_config"] = docker.types.LogConfig(
            type=logging.get("driver") or "json-file", config=logging.get("options") or {}
        )
    if "stop_grace_period" in config:
        options["stop_timeout"] = max(1, round(duration(problems, where, config["stop_grace_period"]) / 1e9))
    _restart(problems, where, config, options)
    _deploy(problems, where, config, options)
    if int(config.get("scale") or 1) != 1:
        problems.add(where, "scale other than 1 is not supported: one container per service")
    mounts = _mounts(problems, where, config, volumes, files_of)
    if config.get("tmpfs"):
        tmpfs = [config["tmpfs"]] if isinstance(config["tmpfs"], str) else config["tmpfs"]
        options["tmpfs"] = {entry.partition(":")[0]: entry.partition(":")[2] for entry in tmpfs}
    image = config.get("image")
    build = _build(problems, where, config.get("build"), directory)
    if not image and "build" not in config:
        problems.add(where, "it has neither 'image' nor 'build'")
    aliases = [name]
    if config.get("container_name") and config["container_name"] != name:
        aliases.append(str(config["container_name"]))
    networks = {}
    for network, joined in (config.get("networks") or {DEFAULT_NETWORK: None}).items():
        joined = joined or {}
        for key in sorted(set(joined) - {"aliases", "ipv4_address", "priority", "gw_priority"}):
            problems.add(
                f"{where} on network {network!r}", f"{key!r} is not supported (aliases, ipv4_address)"
            )
        if joined.get("ipv4_address"):
            try:
                if not isinstance(ip_address(joined["ipv4_address"]), IPv4Address):
                    raise ValueError
            except ValueError:
                problems.add(
                    f"{where} on network {network!r}",
                    f"ipv4_address {joined['ipv4_address']!r} is not an IPv4 address",
                )
                joined = {**joined, "ipv4_address": None}
        networks[network] = {
            "aliases": list(joined.get("aliases") or []),
            "ipv4_address": joined.get("ipv4_address"),
        }
    environment = {str(k): str(v) for k, v in (config.get("environment") or {}).items() if v is not None}
    return ComposeService(
        name=name,
        image=str(image) if image else None,
        build=build,
        command=config.get("command"),
        entrypoint=config.get("entrypoint"),
        environment=environment,
        networks=networks,
        depends_on={
            k: (v or {}).get("condition", "service_started")
            for k, v in (config.get("depends_on") or {}).items()
        },
        mounts=mounts,
        ports=_ports(problems, where, config.get("ports") or []),
        healthcheck=_healthcheck(problems, where, config.get("healthcheck")),
        options=options,
        aliases=aliases,
    )


def _ulimit(name: str, value: Any) -> docker.types.Ulimit:
    if isinstance(value, dict):
        return docker.types.Ulimit(name=name, soft=int(value["soft"]), hard=int(value["hard"]))
    return docker.types.Ulimit(name=name, soft=int(value), hard=int(value))


_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure)(?::(\d+))?$")


def _restart(problems: Problems, where: str, config: dict[str, Any], options: dict[str, Any]) -> None:
    restart = config.get("restart")
    if restart is None:
        return
    match = _RESTART.match(str(restart))
    if not match:
        problems.add(where, f"restart {restart!r} is not no, always, unless-stopped or on-failure[:N]")
        return
    if match[1] != "no":
        options["restart_policy"] = {"Name": match[1], "MaximumRetryCount": int(match[2] or 0)}


def _deploy(problems: Problems, where: str, config: dict[str, Any], options: dict[str, Any]) -> None:
    deploy = config.get("deploy") or {}
    for key in sorted(
        set(deploy) - {"resources", "restart_policy", "replicas", "placement", "labels", "mode"}
    ):
        problems.add(where, f"deploy.{key} is not supported (resources, restart_policy, replicas: 1)")
    if int(deploy.get("replicas") or 1) != 1 or deploy.get("mode") not in (None, "replicated"):
        problems.add(where, "deploy: one replica only: a test's service is one container")
    if deploy.get("placement") and any(deploy["placement"].values()):
        problems.add(where, "deploy.placement is not supported")
    resources = deploy.get("resources") or {}
    limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
    if limits.get("cpus") is not None:
        options["nano_cpus"] = int(float(limits["cpus"]) * 1e9)
    if limits.get("memory") is not None:
        options["mem_limit"] = int(limits["memory"])
    if limits.get("pids") is not None:
        options["pids_limit"] = int(limits["pids"])
    if reservations.get("memory") is not None:
        options["mem_reservation"] = int(reservations["memory"])
    if reservations.get("devices") or reservations.get("generic_resources"):
        problems.add(where, "deploy.resources.reservations of devices are not supported")
    policy = deploy.get("restart_policy")
    if policy and "restart" not in config:
        condition = {"none": "no", "on-failure": "on-failure", "any": "always"}.get(
            policy.get("condition") or "any"
        )
        if condition is None:
            problems.add(
                where,
                f"deploy.restart_policy condition {policy.get('condition')!r} is not none, on-failure or any",
            )
        elif condition != "no":
            options["restart_policy"] = {
                "Name": condition,
                "MaximumRetryCount": int(policy.get("max_attempts") or 0),
            }


def _build(problems: Problems, where: str, build: Any, directory: Path) -> Build | None:
    if build is None:
        return None
    context = str(build.get("context") or ".")
    if "://" in context or context.startswith("git@"):
        problems.add(
            where, f"build context {context!r} is not a local directory (only local contexts are built)"
        )
        return None
    path = (directory / context).resolve()
    if not path.is_relative_to(directory.resolve()):
        problems.add(
            where,
            f"build context {path} is outside the compose file's directory {directory}: it is not sent to the engine",
        )
        return None
    for key in sorted(set(build) - {"context", "dockerfile", "args", "target"}):
        problems.add(where, f"build.{key} is not supported (context, dockerfile, args, target)")
    return Build(
        path,
        dockerfile=str(build.get("dockerfile") or "Dockerfile"),
        args={str(k): str(v) for k, v in (build.get("args") or {}).items() if v is not None},
        target=build.get("target"),
    )


def _mounts(
    problems: Problems,
    where: str,
    config: dict[str, Any],
    volumes: dict[str, dict[str, Any]],
    files_of: dict[str, dict[str, str]],
) -> list[Mount]:
    mounts = []
    for entry in config.get("volumes") or []:
        kind, source, target = entry.get("type"), entry.get("source") or "", entry.get("target")
        if kind == "volume" and source and source not in volumes:
            problems.add(
                where, f"mounts volume {source!r}, which the file's top-level 'volumes:' does not declare"
            )
        elif kind not in ("bind", "volume", "tmpfs"):
            problems.add(where, f"volume type {kind!r} is not supported (bind, volume, tmpfs)")
        else:
            mounts.append(Mount(kind, source, target, bool(entry.get("read_only"))))
    for kind, default_dir in (("secrets", SECRETS_DIRECTORY), ("configs", "/")):
        for entry in config.get(kind) or []:
            source = entry.get("source")
            file = files_of[kind].get(source)
            if file is None:
                problems.add(
                    where,
                    f"uses {kind[:-1]} {source!r}, which the file's top-level '{kind}:' does not declare",
                )
                continue
            target = str(entry.get("target") or source)
            if not target.startswith("/"):
                target = f"{default_dir.rstrip('/')}/{target}"
            if file:
                mounts.append(Mount("bind", file, target, read_only=True))
    return mounts


def _ports(problems: Problems, where: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for port in ports:
        published = port.get("published")
        if published is not None and not str(published).isdigit():
            problems.add(where, f"published port {published!r} is not one port number")
            continue
        binding = int(published) if published is not None else None
        found[f"{port['target']}/{port.get('protocol') or 'tcp'}"] = (
            (port["host_ip"], binding) if port.get("host_ip") else binding
        )
    return found


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)")
_UNIT_NANOSECONDS = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}


def duration(problems: Problems, where: str, text: Any) -> int:
    """Nanoseconds of a compose duration such as ``1m30s``, ``5s`` or ``500ms``."""
    parts = _DURATION.findall(str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text):
        problems.add(where, f"duration {text!r} is not like 1m30s, 5s or 500ms")
        return 0
    return int(sum(float(amount) * _UNIT_NANOSECONDS[unit] for amount, unit in parts))


def _healthcheck(problems: Problems, where: str, given: dict[str, Any] | None) -> dict[str, Any] | None:
    if not given:
        return None
    if given.get("disable"):
        return {"test": ["NONE"]}
    for key in sorted(set(given) - {"test", "interval", "timeout", "retries", "start_period"}):
        problems.add(where, f"healthcheck.{key} is not supported")
    check: dict[str, Any] = {"test": given.get("test")}
    for key in ("interval", "timeout", "start_period"):
        if key in given:
            check[key] = duration(problems, f"{where} healthcheck.{key}", given[key])
    if "retries" in given:
        check["retries"] = int(given["retries"])
    return check
