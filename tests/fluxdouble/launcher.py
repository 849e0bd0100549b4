"""The test double's `flux` command: `flux run` inside a job (start -n tasks, wait,
exit with the highest exit code, as a job shell would report it; `--dry-run`
prints the jobspec), `flux relay PATH`, which the ssh connector runs on the
remote host, and `flux start --test-size=N COMMAND` (a private double broker)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading


def relay(path: str) -> int:
    """Bridge stdin/stdout to the broker socket at ``path``, like ``flux relay``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        print(f"{socket.gethostname()}: local://{path}: {err.strerror}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    out.write(b"\0")
    out.flush()
    reader = sock.makefile("rb")

    def downstream() -> None:
        while line := reader.readline():
            out.write(line)
            out.flush()
        os._exit(0)  # the broker went away: so does the relay, and ssh with it

    threading.Thread(target=downstream, daemon=True).start()
    while data := os.read(0, 65536):
        sock.sendall(data)
    return 0


def start(argv: list[str]) -> int:
    """``flux start [--test-size=N] COMMAND``: a private double broker running COMMAND."""
    parser = argparse.ArgumentParser(prog="flux start")
    parser.add_argument("--test-size", type=int, default=1)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [os.path.dirname(here), os.environ.get("PYTHONPATH")])))
    return subprocess.call([sys.executable, "-m", "fluxdouble",
                            f"--test-size={args.test_size}", "--", *args.command], env=env)


def main(argv: list[str]) -> int:
    if argv[:1] == ["relay"] and len(argv) == 2:
        return relay(argv[1])
    if argv[:1] == ["start"]:
        return start(argv[1:])
    if not argv or argv[0] != "run":
        print(f"fluxdouble: only 'flux run' is available in a job, not {argv[:1]}",
              file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="flux run")
    parser.add_argument("-N", "--nodes", type=int)
    parser.add_argument("-n", "--ntasks", type=int, default=1)
    parser.add_argument("-c", "--cores-per-task", type=int, default=1)
    parser.add_argument("-g", "--gpus-per-task", type=int, default=0)
    parser.add_argument("-x", "--exclusive", action="store_true")
    parser.add_argument("-o", "--setopt", action="append", default=[])
    parser.add_argument("-S", "--setattr", action="append", default=[])
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv[1:])
    if args.nodes and args.nodes > args.ntasks:
        print("flux run: node count must not be greater than task count", file=sys.stderr)
        return 1
    if args.dry_run:  # print the jobspec, as flux run --dry-run does
        from fluxdouble.job import JobspecV1

        jobspec = JobspecV1.from_command(args.command, num_tasks=args.ntasks,
                                         cores_per_task=args.cores_per_task,
                                         gpus_per_task=args.gpus_per_task or None,
                                         num_nodes=args.nodes, exclusive=args.exclusive)
        print(jobspec.dumps())
        return 0
    procs = [subprocess.Popen(args.command, env=dict(os.environ, FLUX_TASK_RANK=str(rank),
                                                     FLUX_JOB_SIZE=str(args.ntasks)))
             for rank in range(args.ntasks)]
    codes = [proc.wait() for proc in procs]
    return max((128 - c if c < 0 else c) for c in codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
