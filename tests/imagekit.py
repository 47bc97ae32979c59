"""Images of real services for the tests, made from this host's Debian packages: no registry.

A service binary and the shared libraries ``ldd`` names are added to the busybox root
filesystem the plugin makes, and imported with ``docker import``, once per engine, under
the plugin's image lock (xdist workers and concurrent runs import it once).
"""

from __future__ import annotations

import io
import json
import os
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


FAULT_IMAGE = "dockernet-test/netfault:1"
XTABLES = "/usr/lib/x86_64-linux-gnu/xtables"
# The iptables extensions the plugin's faults use: comments, random loss, TCP resets.
EXTENSIONS = ("libxt_comment", "libxt_statistic", "libxt_standard", "libipt_REJECT", "libxt_tcp", "libxt_udp")


def fault_image(client: docker.DockerClient) -> str:
    """The helper image of link faults, from this host's iptables (nft) and iproute2's tc."""
    multi = shutil.which("xtables-nft-multi") or "/usr/sbin/xtables-nft-multi"
    tc = "/usr/sbin/tc" if shutil.which("/usr/sbin/tc") else shutil.which("tc")
    libdir = next((d for d in (XTABLES, "/usr/lib/xtables") if os.path.isdir(d)), None)
    if not shutil.which(multi) or tc is None or libdir is None:
        pytest.skip("iptables (nft) and iproute2 are not installed here (Debian: iptables, iproute2)")
    extensions = [f"{libdir}/{name}.so" for name in EXTENSIONS]
    return import_with(client, FAULT_IMAGE, [multi, tc, *extensions])
