"""What a network or a service is to be, as one frozen value: checked once, passed whole.

The pytest glue (a marker, ``service_fixture``), the manager and the network each take a
spec rather than loose keywords, so a request keeps one shape from the test down to the
engine call. Specs are hashable and compare by content: the prefetch of a network is
taken when the test's spec equals the prefetched one, and a later topology can be
recognised by the specs it was made of.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from ..engine.naming import Labels, normalize_aliases, normalize_labels
from ..errors import ArgumentError, hide_frames_of_own_errors
from .wait import Strategy, WaitArgument

Command = str | Sequence[str]
# Keys of a service's docker-py options that would put its container on another network.
FOREIGN_NETWORK_KWARGS = ("network", "network_mode", "networking_config")


def _pairs(mapping: Mapping[str, str] | None, what: str) -> tuple[tuple[str, str], ...]:
    __tracebackhide__ = hide_frames_of_own_errors
    if mapping is None:
        return ()
    if not isinstance(mapping, Mapping):
        raise ArgumentError(f"{what} must be a dict of strings, not {type(mapping).__name__}: {mapping!r}")
    return tuple(sorted((str(key), str(value)) for key, value in mapping.items()))


@dataclass(frozen=True)
class NetworkSpec:
    """How a network is to be made: the test it is for, and its settings.

    Make one with :meth:`of`, which checks and normalises the values; ``labels`` and
    ``options`` are kept as sorted ``(key, value)`` pairs so that two specs of the same
    settings are equal and hash alike.
    """

    test: str | None = None
    """The test's node ID, written into the network's labels (``None``: a worker's network)."""
    internal: bool = False
    """No route outside (``docker network create --internal``)."""
    hermetic: bool = False
    """Names the embedded DNS does not know fail at once instead of being forwarded."""
    ipv6: bool = False
    """Dual-stack: a /64 of the IPv6 pools besides the IPv4 subnet."""
    labels: tuple[tuple[str, str], ...] = ()
    """The user's labels, added to the run's."""
    options: tuple[tuple[str, str], ...] = ()
    """Driver options (``com.docker.network.driver.mtu``...)."""
    holding: tuple[IPv4Address, ...] = ()
    """Static addresses its subnet must hold (a compose file's ``ipv4_address``)."""

    @classmethod
    def of(
        cls,
        *,
        test: str | None = None,
        internal: bool = False,
        hermetic: bool = False,
        ipv6: bool = False,
        labels: Labels | None = None,
        options: Mapping[str, str] | None = None,
        holding: Iterable[IPv4Address | str] = (),
    ) -> NetworkSpec:
        """A spec from keyword settings, as ``create_network`` and the marker take them."""
        __tracebackhide__ = hide_frames_of_own_errors
        for name, value in (("internal", internal), ("hermetic", hermetic), ("ipv6", ipv6)):
            if not isinstance(value, bool):
                raise ArgumentError(f"network setting {name} must be True or False, not {value!r}")
        return cls(
            test=test,
            internal=internal,
            hermetic=hermetic,
            ipv6=ipv6,
            labels=tuple(sorted(normalize_labels(labels).items())),
            options=_pairs(options, "network options"),
            holding=tuple(sorted(IPv4Address(address) for address in holding)),
        )

    @property
    def label_dict(self) -> dict[str, str]:
        """:attr:`labels` as the engine takes them."""
        return dict(self.labels)

    @property
    def option_dict(self) -> dict[str, str] | None:
        """:attr:`options` as the engine takes them (None when there are none)."""
        return dict(self.options) or None


class Options(Mapping[str, Any]):
    """docker-py's ``containers.run`` keywords of a service, frozen.

    Hashable and compared by content (dicts by their items, lists and tuples element by
    element, other values by equality, or by ``repr`` where they are not hashable);
    :meth:`kwargs` hands out a fresh copy each time, so a call that changes what it was
    given never changes the spec.
    """

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values = {str(key): _copy(value) for key, value in (values or {}).items()}
        self._key = _freeze(self._values)

    def __getitem__(self, key: str) -> Any:
        return _copy(self._values[key])

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and self._key == other._key

    def kwargs(self) -> dict[str, Any]:
        """A fresh, mutable copy of the keywords, for docker-py."""
        return {key: _copy(value) for key, value in self._values.items()}

    def __repr__(self) -> str:
        return f"Options({self._values!r})"


def _copy(value: Any) -> Any:
    # Plain containers are copied (a list of volumes, a ports dict); anything else (a
    # docker.types.Mount, a Volume) is the caller's object, handed on as it is.
    if type(value) is dict:
        return {key: _copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy(item) for item in value]
    if type(value) is tuple:
        return tuple(_copy(item) for item in value)
    return value


def _freeze(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        items = sorted(((repr(key), _freeze(item)) for key, item in value.items()), key=lambda pair: pair[0])
        return ("map", tuple(items))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(item) for item in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(repr(item) for item in value)))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    frozen: Hashable = value
    return frozen


def _environment(environment: Mapping[str, str] | Iterable[str] | None) -> tuple[str, ...] | None:
    __tracebackhide__ = hide_frames_of_own_errors
    if environment is None:
        return None
    if isinstance(environment, Mapping):
        return tuple(sorted(f"{key}={value}" for key, value in environment.items()))
    if isinstance(environment, str):
        raise ArgumentError(
            f"environment must be a dict or a list of 'KEY=value' strings, not the string {environment!r}"
        )
    return tuple(str(entry) for entry in environment)


def _strategies(wait: WaitArgument) -> tuple[Strategy, ...]:
    __tracebackhide__ = hide_frames_of_own_errors
    if wait is None:
        return ()
    given = [wait] if isinstance(wait, Strategy) else wait
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
        raise ArgumentError(_not_a_wait(wait))
    for strategy in given:
        if not isinstance(strategy, Strategy):
            raise ArgumentError(_not_a_wait(strategy))
    return tuple(given)


def _not_a_wait(value: object) -> str:
    called = " (call it: wait.port(6379), not wait.port)" if callable(value) else ""
    return (
        f"wait= takes a strategy of pytest_dockernet.wait, such as wait.port(6379), or a list of"
        f" them, not {value!r}{called}"
    )


@dataclass(frozen=True)
class ServiceSpec:
    """What :meth:`Network.run` and ``service_fixture`` are told: how to start one service.

    Make one with :meth:`of`, which checks what can be checked before the engine is asked.
    """

    image: str
    command: str | tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    name: str | None = None
    environment: tuple[str, ...] | None = None
    """``KEY=value`` entries (a dict's sorted by key)."""
    ip: str | None = None
    """A static IPv4 address on the network, checked against its subnet when it starts."""
    min_uptime: float = 0.0
    wait: tuple[Strategy, ...] = ()
    options: Options = field(default_factory=Options)
    """The other keywords, for docker-py's ``containers.run``."""

    @classmethod
    def of(
        cls,
        image: str,
        command: Command | None = None,
        *,
        alias: str | Sequence[str] | None = None,
        name: str | None = None,
        environment: Mapping[str, str] | Iterable[str] | None = None,
        ip: object = None,
        min_uptime: float = 0.0,
        wait: WaitArgument = None,
        **docker_kwargs: Any,
    ) -> ServiceSpec:
        """A spec from :meth:`Network.run`'s arguments; raises ``TypeError`` or ``ValueError`` naming
        the argument that cannot work."""
        __tracebackhide__ = hide_frames_of_own_errors
        if not isinstance(image, str) or not image:
            raise ArgumentError(f"image must be an image reference such as 'redis:7', not {image!r}")
        if isinstance(min_uptime, bool) or not isinstance(min_uptime, (int, float)) or min_uptime < 0:
            raise ArgumentError(f"min_uptime must be 0 or more seconds, not {min_uptime!r}")
        for key in FOREIGN_NETWORK_KWARGS:
            if key in docker_kwargs:
                raise ArgumentError(
                    f"Network.run() does not take {key!r}: a container lives on the network that runs it;"
                    " use another network's connect() to attach it there too"
                )
        if docker_kwargs.pop("detach", True) is not True:
            raise ArgumentError(
                "Network.run() starts long-running services and always detaches; run a command to"
                " completion with run_job(), or in a service with Service.exec()"
            )
        volumes = docker_kwargs.get("volumes")
        if isinstance(volumes, Mapping):
            # Volumes of docker_volume may stand for their names as keys.
            docker_kwargs["volumes"] = {str(key): value for key, value in volumes.items()}
        ports = docker_kwargs.get("ports")
        if ports is not None and not isinstance(ports, Mapping):
            raise ArgumentError(
                f"ports= takes a dict of container port to host port, such as ports={{6379: None}}"
                f" (None: any free host port), not {ports!r}"
            )
        return cls(
            image=image,
            command=command if command is None or isinstance(command, str) else tuple(command),
            aliases=tuple(normalize_aliases(alias)),
            name=name,
            environment=_environment(environment),
            ip=None if ip is None else str(ip),
            min_uptime=float(min_uptime),
            wait=_strategies(wait),
            options=Options(docker_kwargs),
        )

    @property
    def command_arg(self) -> str | list[str] | None:
        """:attr:`command` as docker-py takes it."""
        return list(self.command) if isinstance(self.command, tuple) else self.command

    @property
    def environment_arg(self) -> list[str] | None:
        """:attr:`environment` as docker-py takes it."""
        return None if self.environment is None else list(self.environment)
