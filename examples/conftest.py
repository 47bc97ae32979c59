"""The demo suite's image: busybox, pulled where a registry answers, else built locally."""

from __future__ import annotations

import docker
import pytest

from pytest_dockernet.engine.images import find_static_busybox, image_present, import_busybox, pull_image

PULLED_IMAGE = "busybox:stable"
LOCAL_IMAGE = "dockernet-example/busybox:1"


@pytest.fixture(scope="session")
def busybox(docker_client: docker.DockerClient) -> str:
    """An image with sh, httpd, wget and nslookup.

    Uses busybox:stable when the engine has it; otherwise builds one from this host's
    static busybox (Debian: busybox-static), so the demo runs with no registry at all;
    failing both, pulls busybox:stable.
    """
    if image_present(docker_client, PULLED_IMAGE):
        return PULLED_IMAGE
    if find_static_busybox():
        return import_busybox(docker_client, LOCAL_IMAGE)
    pull_image(docker_client, PULLED_IMAGE)
    return PULLED_IMAGE
