"""Named volumes of the plugin's own: labelled like its networks, so nothing outlives the run.

A named volume a test mounts would otherwise stay behind, unlabelled, invisible to
``pytest-dockernet ls`` and ``prune``, the reaper and the sweep.
"""

from __future__ import annotations

import docker
import docker.errors

from ..engine.cleanup import CleanupFailure, remove_volume
from ..engine.connection import engine_errors
from ..engine.naming import Labels, RunIdentity
from ..errors import VolumeError, hide_frames_of_own_errors


class Volume:
    """A named volume made by :meth:`NetworkManager.create_volume` (``docker_volume``)."""

    def __init__(self, client: docker.DockerClient, name: str, test: str | None = None) -> None:
        self.client = client
        self.name = name
        """``{prefix}-{run}-{worker}-v{n}``: unique per run, worker and volume."""
        self.test = test

    @classmethod
    def create(
        cls,
        client: docker.DockerClient,
        identity: RunIdentity,
        *,
        test: str | None = None,
        labels: Labels | None = None,
        driver: str = "local",
        driver_opts: dict[str, str] | None = None,
    ) -> Volume:
        """Create a labelled named volume."""
        __tracebackhide__ = hide_frames_of_own_errors
        name = identity.next_volume_name()
        with engine_errors(f"creating volume {name}"):
            try:
                client.api.create_volume(
                    name, driver=driver, driver_opts=driver_opts, labels=identity.labels(test, labels)
                )
            except docker.errors.APIError as exc:
                raise VolumeError(
                    f"the engine refused to create volume {name}: {exc.explanation or exc}"
                ) from None
        return cls(client, name, test)

    def mount(self, path: str, mode: str = "rw") -> str:
        """``name:path:mode``, for ``volumes=[...]`` of :meth:`Network.run`."""
        return f"{self.name}:{path}:{mode}"

    def remove(self) -> CleanupFailure | None:
        """Remove the volume now; what failed, if anything (a container still uses it, say)."""
        return remove_volume(self.client, self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Volume {self.name}>"
