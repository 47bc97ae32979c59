"""``pytest-dockernet``: list and prune the plugin's networks and containers.

Exit codes: 0 done (or nothing to do), 1 some resources could not be removed, 2 bad usage
or a removal refused or not confirmed, 3 no Docker engine answers, 4 no run of the id given.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TextIO

import docker

from ..engine import connection as engine
from ..engine.naming import LABEL_HOST, LABEL_WORKER
from ..errors import EngineUnavailableError
from ..text import plural
from ..version import __version__
from .sweeper import RunInfo, inventory, remove_run

EXIT_OK, EXIT_FAILURES, EXIT_REFUSED, EXIT_NO_ENGINE, EXIT_NO_SUCH_RUN = 0, 1, 2, 3, 4


ENGINES_ENV = "PYTEST_DOCKERNET_ENGINES"
SWEEP_LABEL_ENV = "PYTEST_DOCKERNET_SWEEP_LABEL"


def state_of(info: RunInfo) -> str:
    """``alive``, ``dead``, ``dead (lease expired)`` (another host's), ``kept`` (dead, kept on
    purpose) or ``unknown`` (another host's, holding no lease)."""
    alive = info.alive()
    if alive is None:
        return "unknown"
    if alive:
        return "alive"
    if info.kept:
        return "kept"
    return "dead" if info.local else "dead (lease expired)"


def age(created: datetime | None, now: datetime | None = None) -> str:
    """A short age: ``42s``, ``7m``, ``3h``, ``2d``."""
    if created is None:
        return "?"
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def list_runs(
    infos: Sequence[RunInfo], out: TextIO, verbose: bool, engines: Sequence[str] | None = None
) -> None:
    """The table of ``infos``; with ``engines`` (one per info), an ENGINE column says where each is."""
    if not infos:
        out.write("no networks, containers or volumes labelled by pytest-dockernet\n")
        return
    header = ("RUN", "STATE", "AGE", "HOST", "PIDS", "NETWORKS", "CONTAINERS", "VOLUMES")
    rows: list[tuple[str, ...]] = [(*header[:1], "ENGINE", *header[1:]) if engines else header]
    for number, info in enumerate(infos):
        pids = ",".join(str(p) for p in sorted(info.pids)) or "-"
        host = ",".join(sorted(info.hosts)) or "-"
        row = (
            info.run or "-",
            state_of(info),
            age(info.created),
            host,
            pids,
            str(len(info.networks)),
            str(len(info.containers)),
            str(len(info.volumes)),
        )
        rows.append((*row[:1], engines[number], *row[1:]) if engines else row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, cells in enumerate(rows):
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip() + "\n"
        )
        if verbose and index:
            info = infos[index - 1]
            for network in info.networks:
                out.write(f"    network    {network['Name']}  {network['Id'][:12]}\n")
            for container in info.containers:
                labels = container.get("Labels") or {}
                out.write(
                    f"    container  {container['Names'][0].lstrip('/')}  {container['Id'][:12]}"
                    f"  {container.get('State', '?')}  worker={labels.get(LABEL_WORKER, '?')}"
                    f" host={labels.get(LABEL_HOST, '?')}\n"
                )
            for volume in info.volumes:
                out.write(f"    volume     {volume['Name']}\n")


def choose(infos: Sequence[RunInfo], args: argparse.Namespace, err: TextIO) -> list[RunInfo] | None:
    """The runs ``prune`` should remove, or None when it must refuse."""
    if args.run:
        chosen = [info for info in infos if info.run == args.run]
        if not chosen:
            return []
        state = state_of(chosen[0])
        if state == "alive" and not args.force:
            err.write(
                f"run {args.run} is still alive (pids {sorted(chosen[0].pids)}): stop it first,"
                " or pass --force to remove its resources anyway\n"
            )
            return None
        if state == "unknown" and not args.force:
            hosts = ", ".join(sorted(chosen[0].hosts)) or "no host label"
            err.write(
                f"run {args.run} was made on another host ({hosts}), so this host cannot tell"
                " whether it is still alive: prune it from that host, or pass --force once you"
                " know it is over\n"
            )
            return None
        return chosen
    if args.all:
        return list(infos)
    label = sweep_label(args)
    return [info for info in infos if state_of(info).startswith("dead") and info.has_label(label)]


def sweep_label(args: argparse.Namespace) -> tuple[str, str] | None:
    """``--label KEY=VALUE``, else ``$PYTEST_DOCKERNET_SWEEP_LABEL``, as (KEY, VALUE), or None."""
    if args.label is not None:
        return args.label  # type: ignore[no-any-return]  # checked by label_argument
    text = os.environ.get(SWEEP_LABEL_ENV, "")
    return label_argument(text, SWEEP_LABEL_ENV) if text.strip() else None


def label_argument(text: str, where: str = "--label") -> tuple[str, str]:
    """``KEY=VALUE`` as (KEY, VALUE); anything else (``=``, an unset shell variable) is refused."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(
            f"{where} takes KEY=VALUE with a key, such as dockernet-suite=abc123, not {text!r}"
        )
    return key.strip(), value.strip()


def run_argument(text: str) -> str:
    """A run id for ``--run``: never empty (an unset shell variable would otherwise mean every run)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "takes a run id, such as 3f2a9c1d ('pytest-dockernet ls' lists them), not an empty string"
        )
    return text.strip()


def no_such_run(run: str, err: TextIO) -> int:
    err.write(
        f"no run {run!r} on the engine at {engine.endpoint()}: 'pytest-dockernet ls' lists the runs there\n"
    )
    return EXIT_NO_SUCH_RUN


def prune(client: docker.DockerClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    infos = inventory(client)
    if args.run and not any(info.run == args.run for info in infos):
        return no_such_run(args.run, err)
    chosen = choose(infos, args, err)
    if chosen is None:
        return EXIT_REFUSED
    if not chosen:
        out.write("nothing to prune\n")
        return EXIT_OK
    networks = sum(len(info.networks) for info in chosen)
    containers = sum(len(info.containers) for info in chosen)
    volumes = sum(len(info.volumes) for info in chosen)
    kinds = f"{plural(networks, 'network')} and {plural(containers, 'container')}"
    if volumes:
        kinds = f"{plural(networks, 'network')}, {plural(containers, 'container')} and {plural(volumes, 'volume')}"
    summary = f"{kinds} of {plural(len(chosen), 'run')}"
    if args.dry_run:
        out.write(f"would remove {summary}:\n")
        list_runs(chosen, out, verbose=True)
        return EXIT_OK
    if args.all and not args.yes:
        live = [info.run for info in chosen if state_of(info) in ("alive", "unknown")]
        question = (
            f"remove {summary}" + (f", including live or unknown runs {live}" if live else "") + "? [y/N] "
        )
        if not sys.stdin.isatty():
            err.write(f"refusing to {question[:-7]} without confirmation: pass --yes\n")
            return EXIT_REFUSED
        out.write(question)
        out.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            err.write("nothing removed\n")
            return EXIT_REFUSED
    status = EXIT_OK
    for info in chosen:
        removed, failures = remove_run(client, info.run)
        out.write(f"run {info.run}: removed {plural(removed, 'resource')}\n")
        for failure in failures:
            err.write(f"run {info.run}: {failure}\n")
            status = EXIT_FAILURES
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-dockernet",
        description="List and remove the Docker networks and containers pytest-dockernet made.",
        epilog="Uses the engine DOCKER_HOST points at (or the local socket). A run of this host is"
        " alive while any of its processes is; a run of another host is alive while its lease on"
        " the engine is current ('dead (lease expired)' once it is not), and 'unknown' when it"
        " holds no lease.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ls = commands.add_parser("ls", help="list the plugin's resources grouped by run")
    ls.add_argument("--run", metavar="ID", type=run_argument, help="only this run")
    ls.add_argument("-v", "--verbose", action="store_true", help="list every network and container")
    rm = commands.add_parser(
        "prune",
        help="remove the resources of dead runs (not those kept with --dockernet-keep)",
        description="Remove the resources of dead runs, containers first. Runs kept with"
        " --dockernet-keep, and live runs, are left alone unless named with --run or --all.",
    )
    which = rm.add_mutually_exclusive_group()
    which.add_argument(
        "--run",
        metavar="ID",
        type=run_argument,
        help="remove this run's resources (kept or dead; alive or unknown with --force)",
    )
    which.add_argument("--all", action="store_true", help="remove everything the plugin ever labelled")
    rm.add_argument(
        "--force",
        action="store_true",
        help="with --run: remove it even while it is alive, or made on another host",
    )
    rm.add_argument("--yes", "-y", action="store_true", help="with --all: do not ask for confirmation")
    rm.add_argument("--dry-run", "-n", action="store_true", help="only say what would be removed")
    rm.add_argument(
        "--label",
        metavar="KEY=VALUE",
        type=label_argument,
        help="without --run or --all: only dead runs carrying this label (default: $PYTEST_DOCKERNET_SWEEP_LABEL)",
    )
    for command in (ls, rm):
        command.add_argument(
            "--engine",
            metavar="URL",
            action="append",
            help="an engine to work on; repeat for several (default: $PYTEST_DOCKERNET_ENGINES,"
            " comma-separated, else the environment's one engine)",
        )
    return parser


def engines_of(args: argparse.Namespace) -> list[str | None]:
    """The engines to work on: ``--engine``, else ``$PYTEST_DOCKERNET_ENGINES``, else None (the
    environment's one engine)."""
    given = args.engine or [url for url in os.environ.get(ENGINES_ENV, "").split(",") if url.strip()]
    return [url.strip() for url in given] or [None]


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "prune" and args.label is None:
        try:
            sweep_label(args)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))  # a malformed $PYTEST_DOCKERNET_SWEEP_LABEL, as argparse says it
    urls = engines_of(args)
    clients = []
    try:
        for url in urls:
            try:
                clients.append(engine.connect(timeout=30, url=url))
            except EngineUnavailableError as exc:
                err.write(f"pytest-dockernet: {exc}\n")
                return EXIT_NO_ENGINE
        if args.command == "ls":
            return list_engines(clients, urls, args, out, err)
        found = [client for client in clients if not args.run or inventory(client, args.run)]
        if args.run and not found:
            return no_such_run(args.run, err)
        status = EXIT_OK
        for client, url in zip(clients, urls, strict=True):
            if client in found:
                if len(urls) > 1:
                    out.write(f"engine {url}:\n")
                status = max(status, prune(client, args, out, err))
        return status
    finally:
        for client in clients:
            client.close()


def list_engines(
    clients: Sequence[docker.DockerClient],
    urls: Sequence[str | None],
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> int:
    """``ls`` over one engine, or several (with an ENGINE column)."""
    infos: list[RunInfo] = []
    where: list[str] = []
    for client, url in zip(clients, urls, strict=True):
        found = inventory(client, args.run)
        infos += found
        where += [url or engine.endpoint()] * len(found)
    if args.run and not infos:
        return no_such_run(args.run, err)
    list_runs(infos, out, args.verbose, where if len(urls) > 1 else None)
    return EXIT_OK
