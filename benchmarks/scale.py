"""Large sweeps: N one-line steps and a funnel over them, against the same work through
``flux submit --cc`` (issue 25's scale figure), side by side on one broker.

- maestro-flux: ``maestro run -fg -s 10`` of a sweep of N steps (each writes a file in
  its workspace) and a funnel step over them;
- Flux alone: the N workspaces made, ``flux submit --cc=1-N --wait`` of the same command,
  each job in its own workspace with its output there, then the funnel job.

The goal is at most 1.1x at 5,000 and 10,000 steps. The conductor's own CPU time (user
+ system) is given beside each maestro-flux figure, to tell the conductor's share of the
extra from the broker's. Run with ``python -m benchmarks --only scale``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.report import Row

CMD = "echo {} > out.txt"


def spec(folder: Path, steps: int) -> Path:
    study = {
        "description": {"name": f"scale{steps}", "description": "a sweep and a funnel"},
        "batch": {"type": "flux"},
        "study": [
            {"name": "leaf", "description": "one line", "run": {"cmd": CMD.format("$(X)")}},
            {"name": "funnel", "description": "over all", "run": {"cmd": CMD.format("all"),
                                                                  "depends": ["leaf_*"]}},
        ],
        "global.parameters": {"X": {"values": list(range(steps)), "label": "X.%%"}},
    }
    path = folder / f"scale{steps}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def ours(work: Path, steps: int, sleep: int) -> Row:
    out = work / f"ours-{steps}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.maestro_rss", os.devnull, "run",
                           "-fg", "-y", "-s", str(sleep), "-o", str(out),
                           str(spec(work, steps))], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    status = (out / "status.csv").read_text() if (out / "status.csv").exists() else ""
    finished = status.count(",FINISHED,")
    ok = done.returncode == 0 and finished == steps + 1
    cycles = (done.stdout + done.stderr).count("Checking DAG status at")
    return Row(f"a sweep of {steps} one-line steps and a funnel", f"maestro-flux (-s {sleep})",
               seconds, "s",
               note=(f"conductor CPU {cpu:.1f} s, {cycles} cycles" if ok else
                     f"NOT OK: rc {done.returncode}, {finished} finished"),
               extra={"ok": ok, "conductor_cpu_s": cpu, "cycles": cycles})


def flux_alone(work: Path, steps: int) -> Row:
    out = work / f"cc-{steps}"
    started = time.perf_counter()
    for n in range(steps):
        (out / f"X.{n}").mkdir(parents=True)
    (out / "funnel").mkdir()
    sweep = subprocess.run(["flux", "submit", f"--cc=0-{steps - 1}", "--wait", "--quiet",
                            f"--cwd={out}/X.{{cc}}", "--output=flux-{{id}}.out",
                            "sh", "-c", CMD.format("{cc}")], capture_output=True)
    funnel = subprocess.run(["flux", "run", f"--cwd={out}/funnel", "--output=flux-{{id}}.out",
                             "sh", "-c", CMD.format("all")], capture_output=True)
    seconds = time.perf_counter() - started
    ok = sweep.returncode == 0 and funnel.returncode == 0
    return Row(f"a sweep of {steps} one-line steps and a funnel", "flux submit --cc (Flux alone)",
               seconds, "s", reference=True, note="" if ok else "NOT OK", extra={"ok": ok})


def scale_rows(work: Path, sizes: list[int], real: bool, sleep: int = 10) -> list[Row]:
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for steps in sizes:
        print(f"  {steps} steps: maestro-flux ...", file=sys.stderr, flush=True)
        rows.append(ours(work, steps, sleep))
        print(f"  {steps} steps: flux submit --cc ...", file=sys.stderr, flush=True)
        rows.append(flux_alone(work, steps) if real else
                    Row.skipped(rows[-1].figure, "flux submit --cc (Flux alone)"))
    return rows
