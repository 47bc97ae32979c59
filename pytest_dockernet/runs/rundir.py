"""The directory of one run inside the state directory.

::

    <state dir>/runs/<run>/
        procs/<pid>-<start>   one empty file per process of the run, written before that
                              process may create anything: the reaper waits for every one
        tally-<worker>.json   what each process created and removed, for the summary
        reaper.pid            the run's reaper (pid and start time)
        reaper.lock           makes the reaper one per run

A worker that has created nothing yet is known here, not on the engine; so the reaper of a
run whose controller was killed in its first second still waits for it. The reaper removes
the directory when it exits; :func:`remove_stale` removes those of runs that died without one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from ..engine.naming import sanitize_name_part
from ..engine.processes import ProcessRef, format_start, parse_start
from ..engine.statedir import state_errors


class RunDir:
    """The per-run directory of ``run`` under ``state_dir`` (created on first write)."""

    def __init__(self, state_dir: Path, run: str) -> None:
        self.run = run
        self.path = state_dir / "runs" / sanitize_name_part(run, 64)

    @property
    def reaper_lock(self) -> Path:
        """The lock that makes one reaper per run (per engine: see :meth:`reaper_lock_for`)."""
        return self.reaper_lock_for("")

    def reaper_lock_for(self, slot: str) -> Path:
        """The lock that makes one reaper per run and engine: ``slot`` names the engine
        among the run's engines ("" for the first, or only, one)."""
        with state_errors(self.path, "create the run's directory"):
            return self._ensure() / f"reaper{_suffix(slot)}.lock"

    def register(self, process: ProcessRef) -> None:
        """Record ``process`` as one of the run's processes."""
        with state_errors(self.path, "register this process in the run's directory"):
            procs = self._ensure() / "procs"
            procs.mkdir(mode=0o700, exist_ok=True)
            (procs / f"{process.pid}-{format_start(process.started)}").touch()

    def processes(self) -> set[ProcessRef]:
        """Every process registered for the run."""
        found = set()
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path / "procs"):
                pid, _, start = entry.name.partition("-")
                if pid.isdigit():
                    found.add(ProcessRef(int(pid), parse_start(start)))
        return found

    def write_reaper(self, process: ProcessRef, slot: str = "") -> None:
        """Record the run's reaper (of the engine ``slot``)."""
        with state_errors(self.path, "record the run's reaper in"):
            path = self._ensure() / f"reaper{_suffix(slot)}.pid"
            path.write_text(f"{process.pid} {format_start(process.started)}")

    def reaper(self, slot: str = "") -> ProcessRef | None:
        """The run's reaper (of the engine ``slot``) as recorded, or None."""
        return _read_process(self.path / f"reaper{_suffix(slot)}.pid")

    def reapers(self) -> list[ProcessRef]:
        """Every reaper of the run as recorded: one per engine of the run."""
        found = [_read_process(path) for path in sorted(self.path.glob("reaper*.pid"))]
        return [process for process in found if process is not None]

    def write_tally(self, worker: str, data: dict[str, Any]) -> None:
        """Store one process's tally (written whole, then renamed into place).

        ``worker`` names the file: give each process its own (a crashed xdist worker's last
        tally must survive its replacement's).
        """
        _write_whole(self._ensure() / f"tally-{sanitize_name_part(worker, 48)}.json", data)

    def write_reaped(self, pid: int, slot: str, data: dict[str, Any]) -> None:
        """Store what the reaper of engine ``slot`` removed for the dead process ``pid`` (added up)."""
        target = self._ensure() / f"reaped-{pid}{_suffix(slot)}.json"
        before: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            before = json.loads(target.read_text())
        _write_whole(target, {key: int(before.get(key, 0)) + int(value) for key, value in data.items()})

    def reaped(self) -> dict[int, dict[str, int]]:
        """What the reapers removed for dead processes of the run, by pid, summed over engines."""
        found: dict[int, dict[str, int]] = {}
        with contextlib.suppress(OSError):
            for path in self.path.glob("reaped-*.json"):
                pid = path.stem.split("-")[1]
                with contextlib.suppress(OSError, ValueError):
                    counts = found.setdefault(int(pid), {})
                    for key, value in json.loads(path.read_text()).items():
                        counts[key] = counts.get(key, 0) + int(value)
        return found

    def tallies(self) -> dict[str, dict[str, Any]]:
        """The stored tallies, by worker."""
        found: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(OSError):
            for path in self.path.glob("tally-*.json"):
                with contextlib.suppress(OSError, ValueError):
                    found[path.stem[len("tally-") :]] = json.loads(path.read_text())
        return found

    def alive(self) -> bool:
        """Whether a registered process or a reaper of the run still runs."""
        return any(p.alive() for p in self.processes()) or any(r.alive() for r in self.reapers())

    def remove(self) -> None:
        """Remove the directory and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)

    def _ensure(self) -> Path:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.path


# A directory younger than this may belong to a run that is registering its first process.
STALE_AFTER_SECONDS = 60.0


def _suffix(slot: str) -> str:
    return f"-{sanitize_name_part(slot, 16)}" if slot else ""


def _write_whole(target: Path, data: dict[str, Any]) -> None:
    partial = target.with_suffix(f".part-{os.getpid()}-{threading.get_ident()}")
    partial.write_text(json.dumps(data))
    partial.replace(target)


def _read_process(path: Path) -> ProcessRef | None:
    try:
        pid, _, start = path.read_text().partition(" ")
        return ProcessRef(int(pid), parse_start(start.strip()))
    except (OSError, ValueError):
        return None


def remove_stale(state_dir: Path) -> int:
    """Remove the directories of runs none of whose processes runs any more; return how many."""
    removed = 0
    cutoff = time.time() - STALE_AFTER_SECONDS
    with contextlib.suppress(OSError):
        for entry in os.scandir(state_dir / "runs"):
            run_dir = RunDir(state_dir, entry.name)
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_mtime > cutoff:
                continue
            if not run_dir.alive():
                run_dir.remove()
                removed += 1
    return removed
