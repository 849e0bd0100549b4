"""Start the double's broker, like ``flux start --test-size=N [COMMAND]``.

With a command, run it with FLUX_URI pointing at the broker and exit with its
status; without one, print the URI and serve until killed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile

from fluxdouble.server import Broker, serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m fluxdouble")
    parser.add_argument("--test-size", type=int, default=1)
    parser.add_argument("--cores-per-node", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rundir", default=None)
    parser.add_argument("--owner", type=int, default=os.getuid(),
                        help="uid of the instance owner (another uid makes us a guest)")
    parser.add_argument("--queue", action="append", default=[])
    parser.add_argument("--level", type=int, default=0, help="instance-level (nested: > 0)")
    parser.add_argument("--parent-uri", default=None)
    parser.add_argument("--flux-version", default=None,
                        help="the recorded flux-core version to answer as (default: "
                        "$FLUXDOUBLE_VERSION, else the newest)")
    parser.add_argument("--gpus-per-node", type=int, default=0)
    parser.add_argument("--list-lag", type=float, default=0.0,
                        help="seconds before job-list lists a submitted job")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rundir = args.rundir or tempfile.mkdtemp(prefix="fluxdouble-")
    os.makedirs(rundir, exist_ok=True)
    broker = Broker(rundir, args.test_size, args.cores_per_node, args.owner, args.queue,
                    args.parent_uri, args.level, args.flux_version, args.gpus_per_node,
                    args.list_lag)
    server = serve(broker)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command:
        env = dict(os.environ, FLUX_URI=broker.uri, FLUXDOUBLE_VERSION=broker.version.name)
        return subprocess.call(command, env=env)
    print(broker.uri, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
