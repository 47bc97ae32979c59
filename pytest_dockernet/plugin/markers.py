"""``@pytest.mark.dockernet(...)``: a test's (or class's, module's) network settings, as a spec."""

from __future__ import annotations

import pytest

from ..core.specs import NetworkSpec
from .settings import Settings

MARKER_KEYWORDS: dict[str, type | tuple[type, ...]] = {
    "internal": bool,
    "hermetic": bool,
    "ipv6": bool,
    "options": dict,
    "labels": (dict, list),
}
MARKER_LINE = (
    "dockernet(internal=False, hermetic=False, ipv6=False, options=None, labels=None): configure"
    " the docker_network of this test (on a class or module: also the class- and module-scoped"
    " networks of its declarative services)"
)


def network_spec(
    node: pytest.Item | pytest.Collector, settings: Settings, test: str | None
) -> tuple[NetworkSpec, str | None]:
    """The spec of the network ``node`` asks for: the ``dockernet`` marker nearest it over the
    settings' defaults, for ``test``; or what is wrong with the marker (then the defaults)."""
    found: dict[str, object] = {"hermetic": settings.hermetic}
    default = NetworkSpec.of(test=test, hermetic=settings.hermetic)
    marker = node.get_closest_marker("dockernet")
    if marker is None:
        return default, None
    valid = ", ".join(MARKER_KEYWORDS)
    if marker.args:
        return default, f"@pytest.mark.dockernet takes keywords only ({valid}), not {marker.args!r}"
    for key, value in marker.kwargs.items():
        if key not in MARKER_KEYWORDS:
            return default, f"@pytest.mark.dockernet does not take {key!r}; its keywords are {valid}"
        if not isinstance(value, MARKER_KEYWORDS[key]):
            return (
                default,
                f"@pytest.mark.dockernet({key}={value!r}): {key} must be a {_kind(MARKER_KEYWORDS[key])}",
            )
        found[key] = value
    try:
        return NetworkSpec.of(test=test, **found), None  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        return default, f"@pytest.mark.dockernet: {exc}"


def _kind(expected: type | tuple[type, ...]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(kind.__name__ for kind in kinds)
