"""A 4-service compose stack through pytest-dockernet, against ``docker compose`` itself.

The stack is the tests' web + db + cache + migration job (``tests/test_compose_stacks.py``):
two redis servers with health checks, a job that waits for one and writes to it, and a web
server that waits for the job and the cache. pytest-dockernet's side is ``load`` + ``start``
+ ``release``; Compose's is ``up -d --wait`` + ``down -v -t 0`` of the same file, in the
same run, on the same engine (``-t 0``: the plugin removes containers at once too). Prints
medians and the ratio.

    python bench/bench_compose.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from imagekit import redis_image  # type: ignore[import-not-found]  # tests/, put on the path above
from test_compose_stacks import PING, WEB_DB_CACHE  # type: ignore[import-not-found]

from pytest_dockernet import NetworkManager, RunIdentity, new_run_id
from pytest_dockernet.core import compose
from pytest_dockernet.engine.compose_cli import compose_command
from pytest_dockernet.engine.images import import_busybox


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    command = compose_command()
    if command is None:
        print("Docker Compose v2 is not installed: pip install 'pytest-dockernet[compose]'")
        return 1
    client = docker.from_env()
    busybox = import_busybox(client, "dockernet-test/busybox:1")
    text = WEB_DB_CACHE.format(redis=redis_image(client), busybox=busybox, ping=PING)
    manager = NetworkManager.for_client(client, RunIdentity(run=new_run_id(), worker="bench"))
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "compose.yaml"
        path.write_text(text)
        project = f"bench-{new_run_id()}"
        try:
            for _ in range(args.rounds):
                started = time.perf_counter()
                stack = compose.start(compose.load(path), manager, test="bench")
                compose.release(stack, manager)
                ours.append(time.perf_counter() - started)
                started = time.perf_counter()
                base = [*command, "--project-name", project, "--file", str(path)]
                subprocess.run([*base, "up", "--detach", "--wait"], check=True, capture_output=True)
                subprocess.run(
                    [*base, "down", "--volumes", "--timeout", "0"], check=True, capture_output=True
                )
                theirs.append(time.perf_counter() - started)
        finally:
            manager.close()
            subprocess.run(
                [
                    *command,
                    "--project-name",
                    project,
                    "--file",
                    str(path),
                    "down",
                    "--volumes",
                    "--timeout",
                    "0",
                ],
                capture_output=True,
                check=False,
            )
    mine, plain = statistics.median(ours), statistics.median(theirs)
    print(f"rounds: {args.rounds}")
    print(f"pytest-dockernet load + start + release: {mine:.2f} s (median)")
    print(f"docker compose up --wait + down -v:       {plain:.2f} s (median)")
    print(f"ratio (pytest-dockernet / docker compose): {mine / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
