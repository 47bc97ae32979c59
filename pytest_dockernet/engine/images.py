"""Making sure an image is on the engine: present, pulled, or built from a static busybox.

Preparation is serialized per engine with a file lock, so that the xdist workers of a
run (and concurrent runs) pull or build an image once and the others reuse it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import filelock
from docker.utils import parse_repository_tag
from docker.utils.build import exclude_paths

from ..errors import ImageUnavailableError, hide_frames_of_own_errors
from .connection import engine_key
from .locks import acquire
from .statedir import default_state_dir, ensure_private_dir, lock_path

log = logging.getLogger("pytest_dockernet")

IMAGE_LOCK_TIMEOUT = 600.0
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def image_present(client: docker.DockerClient, reference: str) -> bool:
    """Whether ``reference`` names an image the engine has."""
    try:
        client.api.inspect_image(reference)  # type: ignore[no-untyped-call]
    except docker.errors.ImageNotFound:
        return False
    return True


def _image_lock(client: docker.DockerClient, state_dir: Path | None) -> filelock.FileLock:
    directory = ensure_private_dir(state_dir or default_state_dir())
    return filelock.FileLock(
        str(lock_path(directory, "images", engine_key(client))), timeout=IMAGE_LOCK_TIMEOUT
    )


def _locked(lock: filelock.FileLock) -> filelock.FileLock:
    acquire(lock, IMAGE_LOCK_TIMEOUT, "the image lock", "another process preparing an image")
    return lock


def pull_image(client: docker.DockerClient, reference: str, *, state_dir: Path | None = None) -> None:
    """Pull ``reference`` unless the engine has it; one process at a time per engine.

    Raises :class:`ImageUnavailableError` naming the image when it is neither present
    nor pullable.
    """
    __tracebackhide__ = hide_frames_of_own_errors
    if image_present(client, reference):
        return
    with _locked(_image_lock(client, state_dir)):
        if image_present(client, reference):
            return  # another worker pulled it while we waited
        log.info("image %s is not present; pulling it", reference)
        try:
            client.images.pull(reference)
        except docker.errors.DockerException as exc:
            reason = exc.explanation if isinstance(exc, docker.errors.APIError) else exc
            raise ImageUnavailableError(
                f"image {reference!r} is neither present on the engine nor pullable: {reason}"
            ) from None


CONTEXT_LABEL = "pytest-dockernet.context-sha256"


def context_digest(directory: Path) -> str:
    """A digest of every file's path and content that a build of ``directory`` sends.

    Files ``.dockerignore`` excludes are left out, with docker-py's own reading of it (the
    one its builds use), so touching an ignored file does not rebuild the image.
    """
    ignore = directory / ".dockerignore"
    patterns = ignore.read_text().splitlines() if ignore.is_file() else []
    patterns = [line.strip() for line in patterns if line.strip() and not line.lstrip().startswith("#")]
    digest = hashlib.sha256()
    for name in sorted(exclude_paths(str(directory), patterns)):
        path = directory / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_image(
    client: docker.DockerClient,
    context: str | os.PathLike[str],
    tag: str,
    *,
    state_dir: Path | None = None,
    dockerfile: str = "Dockerfile",
    buildargs: dict[str, str] | None = None,
    target: str | None = None,
) -> bool:
    """Build ``tag`` from the Dockerfile directory ``context`` unless it is built already.

    The image is labelled with a digest of the context, so a changed context is rebuilt
    and an unchanged one is not: xdist workers and concurrent runs build it once, one at
    a time. Returns whether this call built it. Raises :class:`ImageUnavailableError`
    with the end of the build log when the build fails. ``dockerfile`` (relative to the
    context), ``buildargs`` and ``target`` are the build's, and part of the digest too.
    """
    __tracebackhide__ = hide_frames_of_own_errors
    directory = Path(context)
    if not (directory / dockerfile).is_file():
        raise ImageUnavailableError(f"cannot build {tag!r}: {directory} has no {dockerfile}")
    digest = context_digest(directory)
    if dockerfile != "Dockerfile" or buildargs or target:
        extra = repr((dockerfile, sorted((buildargs or {}).items()), target)).encode()
        digest = hashlib.sha256(digest.encode() + extra).hexdigest()
    with _locked(_image_lock(client, state_dir)):
        if _built_from(client, tag) == digest:
            return False
        log.info("building image %s from %s", tag, directory)
        try:
            # forcerm: a failed step must not leave its intermediate container behind.
            client.images.build(
                path=str(directory),
                tag=tag,
                rm=True,
                forcerm=True,
                labels={CONTEXT_LABEL: digest},
                dockerfile=dockerfile,
                buildargs=buildargs,
                target=target,
            )
        except docker.errors.BuildError as exc:
            tail = "".join(
                str(line.get("stream") or line.get("error") or "") for line in list(exc.build_log)[-10:]
            )
            raise ImageUnavailableError(
                f"building {tag!r} from {directory} failed: {exc.msg}\n{tail.rstrip()}"
            ) from None
        except docker.errors.APIError as exc:
            raise ImageUnavailableError(
                f"building {tag!r} from {directory} failed: {exc.explanation or exc}"
            ) from None
        return True


def _built_from(client: docker.DockerClient, tag: str) -> str | None:
    try:
        labels = client.api.inspect_image(tag)["Config"].get("Labels") or {}  # type: ignore[no-untyped-call]
    except docker.errors.ImageNotFound:
        return None
    return str(labels[CONTEXT_LABEL]) if CONTEXT_LABEL in labels else None


def find_static_busybox() -> str | None:
    """The path of a busybox binary on this host (a static one is needed), if any."""
    for path in BUSYBOX_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def busybox_rootfs(busybox: str) -> bytes:
    """A tar of a minimal root filesystem: busybox and a link for each of its applets."""
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "tmp", "etc", "www"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
    return buffer.getvalue()


def import_busybox(
    client: docker.DockerClient,
    reference: str,
    *,
    busybox: str | None = None,
    state_dir: Path | None = None,
) -> str:
    """Make a ``FROM scratch`` image holding this host's static busybox, once per engine.

    For machines with no registry: busybox brings ``sh``, ``httpd``, ``nc``, ``wget``,
    ``nslookup`` and more. Returns ``reference``. Debian installs a static busybox
    with ``apt-get install busybox-static``.
    """
    __tracebackhide__ = hide_frames_of_own_errors
    if image_present(client, reference):
        return reference
    path = busybox or find_static_busybox()
    if path is None:
        raise ImageUnavailableError(
            f"cannot build {reference!r}: no busybox binary found at {', '.join(BUSYBOX_PATHS)}"
            " (on Debian: apt-get install busybox-static)"
        )
    return import_rootfs(
        client, reference, lambda: busybox_rootfs(path), ["ENV PATH=/bin", 'CMD ["sh"]'], state_dir=state_dir
    )


def import_rootfs(
    client: docker.DockerClient,
    reference: str,
    rootfs: Callable[[], bytes],
    changes: list[str],
    *,
    state_dir: Path | None = None,
) -> str:
    """Import the root filesystem tar that ``rootfs()`` makes as ``reference``, once per engine.

    ``docker import`` under the image lock: xdist workers and concurrent runs import it
    once. ``changes`` are Dockerfile instructions (``ENV``, ``CMD``...). Returns ``reference``.
    """
    if image_present(client, reference):
        return reference
    with _locked(_image_lock(client, state_dir)):
        if not image_present(client, reference):
            repository, tag = parse_repository_tag(reference)
            client.api.import_image_from_data(
                rootfs(), repository=repository, tag=tag or "latest", changes=changes
            )
            if not image_present(client, reference):
                # Podman's Docker API (4.3) imports as REPOSITORY:latest, whatever the tag.
                client.api.tag(f"{repository}:latest", repository, tag)
            log.info("imported image %s", reference)
    return reference
