"""The crash reaper: one small watchdog process per run that cleans up after dead processes.

The first process of a run that creates a network starts it (under a file lock, so a run
gets one however many xdist workers it has). It lives in a session of its own, so a
Ctrl-C in the terminal does not reach it, and it watches:

- every process named in the run's labels: when one dies while the run goes on (a worker
  killed by the OOM killer), the resources that process made are removed;
- the run's root process (the xdist controller): when it is gone, every container and
  network of the run is removed, containers first; then the reaper exits.

It needs nothing but the engine endpoint of the run (``DOCKER_HOST`` and friends are
inherited) and never touches resources of another run. ``--dockernet-keep`` starts none.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import filelock

from .cleanup import find_labelled
from .naming import LABEL_HOST, LABEL_PID
from .runs import pid_alive, remove_run, this_host

log = logging.getLogger("pytest_dockernet.reaper")

POLL_SECONDS = 0.1
DISCOVER_SECONDS = 1.0
# After the root process is gone, how long lingering workers are waited for.
LINGER_SECONDS = 60.0
ENGINE_RETRY_SECONDS = 30.0


def pid_file(state_dir: Path, run: str) -> Path:
    """Where the reaper of ``run`` writes its process id while it runs."""
    return state_dir / f"reaper-{run}.pid"


def ensure_reaper(
    run: str, root_pid: int, state_dir: Path, *, before_start: Callable[[], None] | None = None
) -> bool:
    """Start the reaper of ``run`` unless one runs already; return whether this call started it.

    ``before_start`` runs once per run, under the same lock, before the reaper starts
    (the plugin sweeps dead runs there).
    """
    with filelock.FileLock(str(state_dir / "reaper.lock"), timeout=60):
        path = pid_file(state_dir, run)
        with contextlib.suppress(OSError, ValueError):
            if pid_alive(int(path.read_text())):
                return False
        if before_start is not None:
            before_start()
        log_file = open(state_dir / f"reaper-{run}.log", "ab")  # noqa: SIM115 - handed to the child
        with log_file:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest_dockernet.reaper",
                    "--run",
                    run,
                    "--root-pid",
                    str(root_pid),
                    "--state-dir",
                    str(state_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C for pytest must not reach the reaper
                close_fds=True,
            )
        path.write_text(str(process.pid))
        return True


class Reaper:
    """Watches the processes of one run and removes what the dead ones leave."""

    def __init__(self, client_factory: Callable[[], docker.DockerClient], run: str, root_pid: int) -> None:
        self.client_factory = client_factory
        self.run = run
        self.root_pid = root_pid
        self.host = this_host()
        self.watched: set[int] = set()
        self.problems = 0
        self._client: docker.DockerClient | None = None

    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def discover(self) -> None:
        """Learn the processes that made resources of this run on this host."""
        try:
            containers, networks = find_labelled(self.client(), self.run)
        except docker.errors.DockerException as exc:
            log.warning("cannot list resources of run %s: %s", self.run, exc)
            self.problems += 1
            self._client = None
            return
        for item in containers + networks:
            labels = item.get("Labels") or {}
            if labels.get(LABEL_HOST) == self.host and labels.get(LABEL_PID, "").isdigit():
                self.watched.add(int(labels[LABEL_PID]))

    def remove(self, pid: int | None = None) -> bool:
        """Remove the run's resources (one process's, if ``pid``); False if the engine failed us."""
        try:
            removed, failures = remove_run(self.client(), self.run, pid)
        except docker.errors.DockerException as exc:
            log.warning("cannot remove resources of run %s: %s", self.run, exc)
            self.problems += 1
            self._client = None
            return False
        what = f"process {pid}" if pid is not None else "the run"
        if removed:
            log.info("removed %d resources of %s (run %s)", removed, what, self.run)
        for failure in failures:
            log.warning("%s", failure)
        self.problems += len(failures)
        return True

    def watch(self) -> None:
        """Return once the root process is gone and the run is cleaned."""
        last_discovery = 0.0
        while pid_alive(self.root_pid):
            if time.monotonic() - last_discovery >= DISCOVER_SECONDS:
                self.discover()
                last_discovery = time.monotonic()
            for pid in [p for p in self.watched if p != self.root_pid and not pid_alive(p)]:
                if self.remove(pid):
                    self.watched.discard(pid)
            time.sleep(POLL_SECONDS)
        self.finish()

    def finish(self) -> None:
        """The run is over: remove everything now, and again once lingering workers are gone."""
        deadline = time.monotonic() + ENGINE_RETRY_SECONDS
        while not self.remove() and time.monotonic() < deadline:
            time.sleep(1)
        self.discover()
        lingering = {p for p in self.watched if pid_alive(p)}
        linger_deadline = time.monotonic() + LINGER_SECONDS
        while lingering and time.monotonic() < linger_deadline:
            time.sleep(POLL_SECONDS)
            lingering = {p for p in lingering if pid_alive(p)}
        if self.watched:
            self.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_dockernet.reaper", description=__doc__)
    parser.add_argument("--run", required=True)
    parser.add_argument("--root-pid", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s reaper {args.run}: %(message)s")
    reaper = Reaper(lambda: docker.from_env(timeout=30), args.run, args.root_pid)
    try:
        reaper.watch()
    finally:
        if args.state_dir is not None:
            with contextlib.suppress(OSError):
                pid_file(args.state_dir, args.run).unlink()
            if not reaper.problems:  # keep the log of a reaper that met trouble
                with contextlib.suppress(OSError):
                    (args.state_dir / f"reaper-{args.run}.log").unlink()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
