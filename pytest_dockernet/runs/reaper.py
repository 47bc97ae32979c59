"""The crash reaper: one small watchdog process per run that cleans up after dead processes.

The first process of a run that creates a network starts it (under the run's own lock, so
a run gets one however many xdist workers it has). It lives in a session of its own, so a
Ctrl-C in the terminal does not reach it, and it watches:

- every process of the run: those registered in the run's directory (each process
  registers before it may create anything) and those named in the run's labels. When one
  dies while the run goes on (a worker killed by the OOM killer), the resources that
  process made are removed;
- the run's root process (the xdist controller): once it is gone, every container and
  network of the run is removed, containers first, again and again until no process of the
  run is left and nothing of the run remains; then the reaper exits.

While it watches, it renews the run's lease on the engine (``--dockernet-lease``), so that
runs of other hosts sharing the engine can tell this run is alive; the lease goes last.

Any failure to reach the engine (restarting, frozen, gone) is taken as passing: the reaper
keeps trying, with a fresh client, until the engine answers or its patience runs out. It
needs nothing but the engine endpoint of the run (``DOCKER_HOST`` and friends are
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
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import docker
import filelock
import psutil

from ..engine import connection as engine
from ..engine.cleanup import find_labelled
from ..engine.locks import acquire
from ..engine.naming import LABEL_HOST, this_host
from ..engine.processes import ProcessRef, format_start, parse_start
from ..engine.statedir import state_errors
from .lease import renew, renew_every
from .rundir import RunDir
from .sweeper import processes_in, remove_resources

log = logging.getLogger("pytest_dockernet.reaper")

REAPER_MODULE = "pytest_dockernet.runs.reaper"

T = TypeVar("T")

POLL_SECONDS = 0.1
DISCOVER_SECONDS = 1.0
MAX_RETRY_SECONDS = 1.0
# Each engine call of the reaper gives up after this long, so a frozen engine is retried.
ENGINE_TIMEOUT = 10
# Once the run is over: how long to keep trying an engine that does not answer, and to
# wait for processes of the run that linger (orphaned xdist workers).
PATIENCE_SECONDS = 3600.0
# How often a removal the engine answers but refuses (a broken storage driver) is retried.
REFUSED_ATTEMPTS = 5


def log_file(state_dir: Path, run: str, slot: str = "") -> Path:
    """Where the reaper of ``run`` (of engine ``slot``) logs; kept after it exits only if it met trouble."""
    return state_dir / f"reaper-{run}{'-' + slot if slot else ''}.log"


def ensure_reaper(
    run_dir: RunDir,
    root: ProcessRef,
    state_dir: Path,
    *,
    lock_timeout: float,
    lease: float = 0.0,
    slot: str = "",
) -> bool:
    """Start the reaper of the run unless one runs already; return whether this call started it.

    The lock is the run's own, so no other run ever waits on it. Raises
    :class:`LockTimeoutError` naming the lock file when it is not had within ``lock_timeout``.
    With ``lease`` (seconds), the reaper renews the run's lease on the engine while it watches.
    A run on several engines has one reaper per engine: ``slot`` names this one's engine
    (it reaches it through the ``DOCKER_HOST`` it inherits).
    """
    lock = filelock.FileLock(str(run_dir.reaper_lock_for(slot)))
    acquire(
        lock,
        lock_timeout,
        f"the reaper lock of run {run_dir.run} (--dockernet-lock-timeout)",
        "another process of the run",
    )
    try:
        running = run_dir.reaper(slot)
        if running is not None and running.alive():
            return False
        found = running_reaper(run_dir.run, slot)
        if found is not None:  # its record went (the state directory was deleted meanwhile)
            run_dir.write_reaper(found, slot)
            return False
        pid = _spawn(run_dir.run, root, state_dir, lease, slot)
        run_dir.write_reaper(ProcessRef.of(pid), slot)
        return True
    finally:
        lock.release()


def running_reaper(run: str, slot: str = "") -> ProcessRef | None:
    """The live reaper of ``run`` (engine ``slot``), found among this host's processes, or None."""
    for process in psutil.process_iter(["cmdline", "create_time"]):
        command = process.info.get("cmdline") or []
        if REAPER_MODULE not in command or _argument(command, "--run") != run:
            continue
        if (_argument(command, "--slot") or "") == slot:
            return ProcessRef(process.pid, process.info.get("create_time"))
    return None


def _argument(command: list[str], name: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return command[command.index(name) + 1]
    return None


def _spawn(run: str, root: ProcessRef, state_dir: Path, lease: float, slot: str) -> int:
    command = [
        sys.executable,
        "-m",
        REAPER_MODULE,
        "--run",
        run,
        "--root-pid",
        str(root.pid),
        "--root-start",
        format_start(root.started),
        "--state-dir",
        str(state_dir),
        "--lease",
        f"{lease:g}",
        "--slot",
        slot,
    ]
    log_path = log_file(state_dir, run, slot)
    with state_errors(log_path, "open the reaper's log"):
        output = open(log_path, "ab")  # noqa: SIM115 - closed below, once the reaper has it
    with output, warnings.catch_warnings():
        # The reaper outlives this process on purpose. Popen warns (ResourceWarning, an
        # error under -W error) when its object is dropped while the child runs; the
        # object is dropped here, and subprocess still reaps the child once it exits.
        warnings.simplefilter("ignore", ResourceWarning)
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C for pytest must not reach the reaper
            close_fds=True,
        )
        pid = process.pid
        del process
    return pid


class Reaper:
    """Watches the processes of one run and removes what the dead ones leave."""

    def __init__(
        self,
        client_factory: Callable[[], docker.DockerClient],
        run: str,
        root: ProcessRef,
        run_dir: RunDir | None = None,
        *,
        patience: float = PATIENCE_SECONDS,
        lease: float = 0.0,
        slot: str = "",
    ) -> None:
        self.client_factory = client_factory
        self.run = run
        self.root = root
        self.run_dir = run_dir
        self.patience = patience
        self.lease = lease
        """Seconds the run's lease lives without renewal; 0: the run holds none."""
        self.slot = slot
        """Which of the run's engines this reaper watches ("" for the first, or only, one)."""
        self.host = this_host()
        self.watched: set[ProcessRef] = set()
        self.problems = 0
        self._client: docker.DockerClient | None = None

    def _engine(self, action: str, call: Callable[[docker.DockerClient], T]) -> T | None:
        """``call`` with a client, or None (logged) when the engine failed us in any way."""
        try:
            if self._client is None:
                self._client = self.client_factory()
            return call(self._client)
        except Exception as exc:  # noqa: BLE001 - docker, requests and urllib3 errors alike: retried
            log.warning("the engine failed while %s (run %s): %s", action, self.run, exc)
            self.problems += 1
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
            self._client = None  # a restarted engine needs new connections
            return None

    def discover(self) -> None:
        """Learn the processes of this run: registered ones, and those in its labels."""
        if self.run_dir is not None:
            self.watched |= self.run_dir.processes()
        found = self._engine("listing its resources", lambda client: find_labelled(client, self.run))
        for item in [] if found is None else found[0] + found[1]:
            labels = item.get("Labels") or {}
            if labels.get(LABEL_HOST) == self.host:
                self.watched |= processes_in(labels)

    def remove(self, pid: int | None = None) -> bool | None:
        """Remove the run's resources (one process's, if ``pid``).

        True when nothing failed, False when the engine refused a removal, None when it
        could not be reached.
        """
        what = f"process {pid}" if pid is not None else "the run"
        removal = self._engine(
            f"removing the resources of {what}", lambda c: remove_resources(c, self.run, pid)
        )
        if removal is None:
            return None
        if removal.removed:
            log.info("removed %d resources of %s (run %s)", removal.removed, what, self.run)
            if pid is not None and self.run_dir is not None:
                # For the run's summary: what a crashed process made and never removed.
                counts = {
                    "networks": removal.networks,
                    "containers": removal.containers,
                    "volumes": removal.volumes,
                }
                with contextlib.suppress(OSError):
                    self.run_dir.write_reaped(pid, self.slot, counts)
        for failure in removal.failures:
            log.warning("%s", failure)
        self.problems += len(removal.failures)
        return not removal.failures

    def lingering(self) -> set[ProcessRef]:
        """The processes of the run, other than its root, that still run."""
        return {p for p in self.watched if p.pid != self.root.pid and p.alive()}

    def watch(self) -> None:
        """Return once the root process is gone and the run is cleaned."""
        last_discovery = last_renewal = 0.0
        while self.root.alive():
            if time.monotonic() - last_discovery >= DISCOVER_SECONDS:
                self.discover()
                last_discovery = time.monotonic()
            if self.lease and time.monotonic() - last_renewal >= renew_every(self.lease):
                last_renewal = self._renew_lease(last_renewal)
            for process in [p for p in self.watched if p.pid != self.root.pid and not p.alive()]:
                if self.remove(process.pid) is True:
                    self.watched.discard(process)
            time.sleep(POLL_SECONDS)
        self.finish()

    def _renew_lease(self, last: float) -> float:
        """Renew the run's lease; return when it was renewed (``last`` if the engine failed)."""
        renewed = self._engine("renewing the lease", lambda client: renew(client, self.run))
        return last if renewed is None else time.monotonic()

    def finish(self) -> None:
        """The run is over: remove everything, and again until no process of it is left."""
        deadline = time.monotonic() + self.patience
        delay, refused = POLL_SECONDS, 0
        while True:
            self.discover()
            lingering = self.lingering()
            outcome = self.remove()
            refused += outcome is False
            if not lingering and (outcome is True or refused >= REFUSED_ATTEMPTS):
                return
            if time.monotonic() >= deadline:
                log.error(
                    "gave up on run %s after %.0f s: the engine did not answer, or processes %s"
                    " are still running",
                    self.run,
                    self.patience,
                    sorted(p.pid for p in lingering),
                )
                self.problems += 1
                return
            time.sleep(delay)
            # Lingering workers are polled briskly; an engine that keeps failing, less so.
            delay = POLL_SECONDS if outcome is True else min(delay * 2, MAX_RETRY_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_dockernet.runs.reaper", description=__doc__)
    parser.add_argument("--run", required=True)
    parser.add_argument("--root-pid", type=int, required=True)
    parser.add_argument("--root-start", default="")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--patience", type=float, default=PATIENCE_SECONDS)
    parser.add_argument("--lease", type=float, default=0.0, help="renew the run's lease of this many seconds")
    parser.add_argument("--slot", default="", help="which engine of the run this reaper watches")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s reaper {args.run}: %(message)s")
    run_dir = RunDir(args.state_dir, args.run) if args.state_dir is not None else None
    root = ProcessRef(args.root_pid, parse_start(args.root_start))
    reaper = Reaper(
        lambda: engine.client(ENGINE_TIMEOUT),
        args.run,
        root,
        run_dir,
        patience=args.patience,
        lease=args.lease,
        slot=args.slot,
    )
    try:
        reaper.watch()
    except BaseException:
        reaper.problems += 1
        log.exception("the reaper of run %s failed", args.run)
        raise
    finally:
        # The run's directory goes with its last reaper (a run on several engines has several).
        if run_dir is not None and not any(r.alive() for r in run_dir.reapers() if r.pid != os.getpid()):
            run_dir.remove()
            if not reaper.problems:  # keep the log of a reaper that met trouble
                with contextlib.suppress(OSError):
                    log_file(args.state_dir, args.run, args.slot).unlink()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
