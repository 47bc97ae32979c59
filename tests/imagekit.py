"""Images of real services for the tests, made from this host's Debian packages: no registry.

A service binary and the shared libraries ``ldd`` names are added to the busybox root
filesystem the plugin makes, and imported with ``docker import``, once per engine, under
the plugin's image lock (xdist workers and concurrent runs import it once).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile

import docker
import pytest

from pytest_dockernet.engine.images import busybox_rootfs, find_static_busybox, import_rootfs

REDIS_IMAGE = "dockernet-test/redis:2"
REDIS_COMMAND = [
    "redis-server",
    "--port",
    "6379",
    "--protected-mode",
    "no",
    "--save",
    "",
    "--appendonly",
    "no",
]


def shared_libraries(binary: str) -> list[str]:
    """The files the dynamic loader needs for ``binary`` (the loader itself included)."""
    listed = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return sorted(set(re.findall(r"(/\S+)", listed)))


def rootfs_with(binaries: list[str]) -> bytes:
    """The busybox root filesystem plus ``binaries`` and their libraries, at their host paths."""
    busybox = find_static_busybox()
    if busybox is None:
        pytest.skip("no static busybox on this host (Debian: busybox-static)")
    base = io.BytesIO(busybox_rootfs(busybox))
    out = io.BytesIO()
    # dereference: the files themselves at the paths ldd and the ELF interpreter name
    # (Debian links /lib into /usr, and redis-server is a link to a multi-call binary).
    with (
        tarfile.open(fileobj=base) as source,
        tarfile.open(fileobj=out, mode="w", dereference=True) as target,
    ):
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        for path in sorted({*binaries, *(lib for binary in binaries for lib in shared_libraries(binary))}):
            target.add(path, arcname=path.lstrip("/"), recursive=False)
    return out.getvalue()


def import_with(
    client: docker.DockerClient, reference: str, binaries: list[str], command: list[str] | None = None
) -> str:
    """``reference``: busybox plus ``binaries``, imported once per engine, running ``command``."""
    changes = ["ENV PATH=/bin:/usr/bin"] + ([f"CMD {json.dumps(command)}"] if command else [])
    return import_rootfs(client, reference, lambda: rootfs_with(binaries), changes)


def redis_image(client: docker.DockerClient) -> str:
    """A redis image from Debian's redis-server (``apt-get install redis-server``)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed here (Debian: apt-get install redis-server)")
    return import_with(client, REDIS_IMAGE, [str(server)], REDIS_COMMAND)
