"""The per-user directory that holds the plugin's lock files.

It is private (mode 0700) because a lock file another user could replace would let them
stall or race our allocations; a directory owned by someone else, or a symlink planted
where it should be, is refused rather than used.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from .errors import DockernetError

STATE_DIR_ENV = "PYTEST_DOCKERNET_STATE_DIR"


def default_state_dir() -> Path:
    """``$PYTEST_DOCKERNET_STATE_DIR``, else ``$XDG_RUNTIME_DIR/pytest-dockernet``,
    else ``<tmp>/pytest-dockernet-<uid>``."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "pytest-dockernet"
    return Path(tempfile.gettempdir()) / f"pytest-dockernet-{os.getuid()}"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, or check that an existing one is safe to use."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DockernetError(f"cannot create the state directory {path}: {exc}") from exc
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
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def lock_path(state_dir: Path, kind: str, engine_key: str) -> Path:
    """The lock file for ``kind`` of work on the engine identified by ``engine_key``."""
    digest = hashlib.sha256(engine_key.encode()).hexdigest()[:16]
    return state_dir / f"{kind}-{digest}.lock"
