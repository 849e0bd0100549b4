"""One command for every benchmark: ``python -m benchmarks [--mode real|double]``.

real (default): re-runs itself inside ``flux start --test-size=N`` so that every path
(maestro-flux, Maestro's built-in adapter at its defaults and with ``nested: False``,
bare binding loops, ``flux submit --cc``) shares one broker, in one run: compare the
ratios, not the absolute figures. double: re-runs itself under the test double
(tests/fluxdouble), no broker needed; it only smoke-tests the harness and its figures
mean nothing for speed. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSIDE = "MAESTRO_FLUX_BENCH_INSIDE"


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--mode", choices=["real", "double"], default="real")
    add("--size", type=int, default=1, help="broker size (flux start --test-size)")
    add("--steps", type=_sizes, default=[200, 1000], help="study sizes, e.g. 200,1000")
    add("--memory-sizes", type=_sizes, default=[10000],
        help="larger studies run with maestro-flux alone, for the conductor's peak RSS")
    add("--builtin-sizes", type=_sizes, default=[200],
        help="sizes at which the built-in adapter runs at its defaults (~1 s/step)")
    add("--ids", type=_sizes, default=[1000, 10000], help="check_jobs sizes")
    add("--cancel-ids", type=int, default=1000)
    add("--submit-jobs", type=int, default=300, help="jobs per submit path")
    add("--rounds", type=int, default=10, help="interleaved rounds per submit path")
    add("--cycle-ids", type=int, default=100, help="in-progress ids in a steady cycle")
    add("--view-sizes", type=_sizes, default=[1000, 10000],
        help="study sizes whose status and report are timed from their files (views)")
    add("--only", choices=["micro", "studies", "critical-path", "faults", "ready-queue",
                           "resume", "wake", "views", "scale"], default=None,
        help="critical-path, faults, ready-queue, resume, wake, views and scale run only "
             "when asked for")
    add("--scale-sizes", type=_sizes, default=[5000, 10000],
        help="sweep sizes against flux submit --cc, scale")
    add("--fault-sizes", type=_sizes, default=[6, 996],
        help="sweep sizes of the fault studies (each has 4 more steps)")
    add("--kills", type=int, default=10, help="conductor SIGKILLs per fault study")
    add("--seed", type=int, default=None, help="random seed of the kill times")
    add("--fault-kinds", default="plain,hashws,restart,failing",
        help="fault studies: plain, hashws (maestro run --hashws), restart (a step that "
             "times out and is restarted), failing (a failing branch)")
    add("--queue-sizes", type=_sizes, default=[1000, 10000], help="ready steps, ready-queue")
    add("--resume-steps", type=int, default=10000, help="the killed study's steps, resume")
    add("--resume-earlier", type=int, default=20000,
        help="earlier jobs of the same spec held in the instance, resume")
    add("--resume-kill-at", type=int, default=5000,
        help="the conductor is killed at this answer of its first cycle, resume")
    add("--ssh", action="store_true",
        help="faults and resume also over ssh:// (a throw-away sshd on loopback)")
    add("--sleeps", type=_sizes, default=[60, 600], help="conductor sleeps, critical-path")
    add("--idle-sizes", type=_sizes, default=[10, 10000],
        help="study sizes of the idle-load figure, wake")
    add("--level-seconds", type=float, default=2.0, help="each chain level's sleep")
    add("--funnel-leaves", type=int, default=1000, help="the funnel's leaves")
    add("--json", type=Path, default=None, help="default benchmarks/results/<mode>.json")
    args = parser.parse_args(argv)
    args.json = args.json or ROOT / "benchmarks" / "results" / f"{args.mode}.json"
    return args


def reexec(args: argparse.Namespace, argv: list[str]) -> int:
    """Run this command again inside a broker of the chosen mode."""
    env = dict(os.environ, **{INSIDE: "1"})
    pythonpath = [str(ROOT)]
    inner = [sys.executable, "-m", "benchmarks", *argv]
    if args.mode == "real":
        if shutil.which("flux") is None:
            print("real mode needs flux-core's 'flux' on PATH (and libflux-core on "
                  "LD_LIBRARY_PATH); use --mode double for a smoke test", file=sys.stderr)
            return 2
        env.pop("MAESTRO_FLUX_BINDINGS", None)
        env.pop("FLUX_URI", None)
        command = ["flux", "start", f"--test-size={args.size}", *inner]
    else:
        pythonpath.append(str(ROOT / "tests"))
        env["MAESTRO_FLUX_BINDINGS"] = "fluxdouble"
        rundir = tempfile.mkdtemp(prefix="mf-bench-double-")
        command = [sys.executable, "-m", "fluxdouble", f"--test-size={args.size}",
                   f"--rundir={rundir}", "--", *inner]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*pythonpath, env.get("PYTHONPATH")]))
    return subprocess.call(command, env=env, cwd=ROOT)


def machine() -> dict:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else ""
    return {"host": platform.node(), "system": platform.platform(), "cpus": os.cpu_count(),
            "cpu": model, "python": platform.python_version()}


def flux_version(real: bool) -> str:
    if not real:
        return "test double (figures meaningless for speed)"
    done = subprocess.run(["flux", "version"], capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if "libflux-core" in line]
    return lines[0].split()[-1] if lines else "?"


def inside(args: argparse.Namespace, argv: list[str]) -> int:
    from benchmarks import targets
    from benchmarks.report import add_ratios, markdown, write_json
    from benchmarks.suite import run_all

    real = args.mode == "real"
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="mf-bench-"))
    rows = run_all(args, work, real)
    add_ratios(rows)
    verdicts = targets.judge(rows, args) if real else []
    header = {
        "mode": args.mode, "meaningful_for_speed": real,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks", *argv]), "machine": machine(),
        "flux_core": flux_version(real), "broker_size": args.size,
        "load_before": load_before, "load_after": os.getloadavg(),
        "targets": [verdict.as_dict() for verdict in verdicts],
    }
    write_json(args.json, header, rows)
    print(markdown(json.loads(args.json.read_text())))
    print(f"\nJSON: {args.json} (python -m benchmarks.report {args.json} prints this again)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.environ.get(INSIDE) != "1":
        return reexec(args, argv)
    return inside(args, argv)
