"""The per-user directory that holds the plugin's lock files and run directories.

It is private (mode 0700) because a lock file another user could replace would let them
stall or race our allocations. A directory owned by someone else, one that others may
write to, one holding files of another user, or a symlink planted where it should be, is
refused with the reason rather than used (or silently repaired: what another user planted
in it would stay).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import DockernetError, StateDirError

STATE_DIR_ENV = "PYTEST_DOCKERNET_STATE_DIR"
HOW_TO_MOVE = f"set {STATE_DIR_ENV} to a writable directory of your own"


@contextlib.contextmanager
def state_errors(path: Path | str, action: str) -> Iterator[None]:
    """Turn an ``OSError`` (read-only, full, gone) of the state directory into one sentence."""
    __tracebackhide__ = True
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise StateDirError(f"cannot {action} {path} ({reason}): {HOW_TO_MOVE}") from None


def default_state_dir() -> Path:
    """``$PYTEST_DOCKERNET_STATE_DIR``, else ``$XDG_RUNTIME_DIR/pytest-dockernet``,
    else ``<tmp>/pytest-dockernet-<uid>``."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "pytest-dockernet"
    try:
        temporary = tempfile.gettempdir()
    except FileNotFoundError:
        raise StateDirError(
            "no usable temporary directory for the plugin's state directory (TMPDIR, /tmp,"
            f" /var/tmp and the current directory cannot be written): {HOW_TO_MOVE}"
        ) from None
    return Path(temporary) / f"pytest-dockernet-{os.getuid()}"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, or check that an existing one is safe to use."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StateDirError(
            f"cannot create the state directory {path} ({exc.strerror or exc}): {HOW_TO_MOVE}"
        ) from None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise DockernetError(f"refusing to use the state directory {path}: it is a symlink")
    if not stat.S_ISDIR(info.st_mode):
        raise DockernetError(f"refusing to use the state directory {path}: it is not a directory")
    if info.st_uid != os.getuid():
        raise DockernetError(
            f"refusing to use the state directory {path}: it is owned by uid {info.st_uid},"
            f" not by you (uid {os.getuid()}); set {STATE_DIR_ENV} to a directory of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DockernetError(
            f"refusing to use the state directory {path}: its mode {mode:04o} lets other users"
            f" write to it (they could plant lock files); remove it, or 'chmod 700 {path}' once"
            f" you have checked its contents, or set {STATE_DIR_ENV} to a directory of your own"
        )
    _check_contents(path)
    if mode != 0o700:
        os.chmod(path, 0o700)  # ours, and nobody else could write to it: only tighten reading
    return path


def _check_contents(path: Path) -> None:
    for entry in os.scandir(path):
        owner = entry.stat(follow_symlinks=False).st_uid
        if owner != os.getuid():
            raise DockernetError(
                f"refusing to use the state directory {path}: it holds {entry.name}, owned by uid"
                f" {owner}, not by you (uid {os.getuid()}); remove that file, or set {STATE_DIR_ENV}"
                " to a directory of your own"
            )


def lock_path(state_dir: Path, kind: str, engine_key: str) -> Path:
    """The lock file for ``kind`` of work on the engine identified by ``engine_key``."""
    digest = hashlib.sha256(engine_key.encode()).hexdigest()[:16]
    return state_dir / f"{kind}-{digest}.lock"
