"""A study's critical path: how long a graph of levels takes under the conductor's sleep.

Maestro submits a step once it has seen its parents finish, so each level of a
study waits for the next conductor cycle. With ``flux_dependencies`` maestro-flux
hands the graph to Flux (afterok), so Flux runs the levels back to back. Each
graph runs, side by side in one broker, as:

- maestro-flux (dependencies held by Flux, the default);
- maestro-flux with ``flux_dependencies: false`` (one level per cycle, as today);
- Maestro's built-in adapter (``type: flux-builtin``, ``nested: False``);
- the same graph submitted straight to Flux with its own dependencies
  (``flux submit --dependency=afterok:ID``), which is the floor.

Graphs (by default): a chain of 6 levels of ``sleep 2`` under ``-s 60`` and ``-s 600``,
and a funnel of 1000 leaves into one step followed by a chain of 10 (under ``-s 60``).
Since the conductor wakes when a job starts or ends (maestro/wake.py), maestro-flux's
figure does not grow with the sleep; the one-level-per-cycle paths are not run under a
sleep of 300 s or more (six levels would take over half an hour each), and their
figure is that many sleeps. For maestro-flux, the time from the study's last job ending
in Flux to the study's end is given too. Run with
``python -m benchmarks --only critical-path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.report import Row


@dataclass(frozen=True)
class Graph:
    """A study: ``leaves`` parallel roots (0: none), then a chain of ``chain`` steps."""

    name: str
    leaves: int
    chain: int
    cmd: str

    @property
    def steps(self) -> int:
        return self.leaves + self.chain

    def spec(self, batch: dict, nested: bool | None) -> dict:
        study = []
        if self.leaves:
            study.append(_step("leaf", self.cmd, nested))
        for n in range(self.chain):
            parent = (f"level{n - 1}" if n else "leaf_*") if (n or self.leaves) else None
            study.append(_step(f"level{n}", self.cmd, nested, parent))
        spec = {"description": {"name": self.name, "description": "critical path"},
                "batch": batch, "study": study}
        if self.leaves:
            spec["global.parameters"] = {"X": {"values": list(range(self.leaves)),
                                               "label": "X.%%"}}
        return spec


def _step(name: str, cmd: str, nested: bool | None, parent: str | None = None) -> dict:
    run: dict = {"cmd": cmd + (" # $(X)" if name == "leaf" else ""), "procs": 1}
    if parent:
        run["depends"] = [parent]
    if nested is not None:
        run["nested"] = nested
    return {"name": name, "description": name, "run": run}


PATHS = (
    ("maestro-flux (Flux holds the dependencies)", {"type": "flux"}, None),
    ("maestro-flux, flux_dependencies: false", {"type": "flux", "flux_dependencies": False},
     None),
    ("built-in, nested: False", {"type": "flux-builtin"}, False),
)
NATIVE = "flux submit --dependency=afterok (Flux alone)"
#: Sleeps at and above which the one-level-per-cycle paths are not run.
SLOW_SLEEP = 300


def run_maestro(work: Path, graph: Graph, sleep: int, label: str, batch: dict,
                nested: bool | None) -> Row:
    spec = work / f"{graph.name}-{len(os.listdir(work))}.yaml"
    spec.write_text(yaml.safe_dump(graph.spec(batch, nested), sort_keys=False))
    out = work / f"out-{spec.stem}"
    print(f"  {graph.name} under -s {sleep}: {label} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.maestro_rss", str(out) + ".rss",
                           "run", "-fg", "-y", "-s", str(sleep), "-o", str(out), str(spec)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    status = (out / "status.csv").read_text() if (out / "status.csv").exists() else ""
    finished = status.count(",FINISHED,")
    ok = done.returncode == 0 and finished == graph.steps
    cycles = (done.stdout + done.stderr).count("Checking DAG status at")
    after = _after_last_job(out) if ok else None
    return Row(_figure(graph, sleep), label, seconds, "s",
               note=(f"{cycles} conductor cycles" + (f"; the study ended {after:.2f} s after "
                                                     "its last job" if after is not None
                                                     else "")) if ok else
               f"NOT OK: rc {done.returncode}, {finished} of {graph.steps} finished",
               extra={"ok": ok, "cycles": cycles, "after_last_job_s": after})


def _after_last_job(out: Path) -> float | None:
    """Seconds from the study's last job going inactive in Flux to the study's end
    (Maestro's last write of status.csv)."""
    from maestro_flux.broker import bindings
    from maestro_flux.model import jobids

    status = (out / "status.csv").read_text().splitlines()[1:]
    ids = {jobids.parse_jobid(line.split(",")[1]) for line in status
           if line.split(",")[1] not in ("--", "")}
    handle = bindings.connect(None)
    payload = {"max_entries": 0, "attrs": ["t_inactive"], "since": 0.0,
               "constraint": {"and": [{"userid": [os.getuid()]}]}}
    ended = [entry.get("t_inactive") or 0.0
             for entry in handle.rpc("job-list.list", payload).get()["jobs"]
             if int(entry["id"]) in ids]
    if len(ended) != len(ids) or not ended:
        return None
    return (out / "status.csv").stat().st_mtime - max(ended)


def run_native(graph: Graph, sleep: int) -> Row:
    """The graph straight to Flux: leaves with --cc, each level afterok on the last."""
    cmd = graph.cmd.split()
    started = time.perf_counter()
    after: list[str] = []
    if graph.leaves:
        after = _submit(["--cc", f"1-{graph.leaves}", *cmd])
    for _ in range(graph.chain):
        after = _submit([*(f"--dependency=afterok:{jobid}" for jobid in after), *cmd])
    done = subprocess.run(["flux", "job", "attach", after[-1]], capture_output=True)
    seconds = time.perf_counter() - started
    return Row(_figure(graph, sleep), NATIVE, seconds, "s",
               note="" if done.returncode == 0 else "NOT OK", extra={"ok": done.returncode == 0})


def _submit(args: list[str]) -> list[str]:
    done = subprocess.run(["flux", "submit", *args], capture_output=True,
                          text=True, check=True)
    return done.stdout.split()


def _figure(graph: Graph, sleep: int) -> str:
    levels = graph.chain + bool(graph.leaves)
    return f"{graph.name}: {graph.steps} steps, {levels} levels, -s {sleep}"


def critical_path_rows(work: Path, real: bool, sleeps: list[int], level_seconds: float,
                       funnel_leaves: int) -> list[Row]:
    """Each graph under each conductor sleep (the funnel under the first), every path."""
    work.mkdir(parents=True, exist_ok=True)
    chain = Graph("chain6", 0, 6, f"sleep {level_seconds:g}")
    # The funnel step, then a chain of 10.
    funnel = Graph(f"funnel{funnel_leaves}", funnel_leaves, 11, "true")
    rows = []
    cases = [(chain, sleep) for sleep in sleeps] + [(funnel, sleeps[0])]
    for graph, sleep in cases:
        for label, batch, nested in PATHS:
            if batch["type"] == "flux-builtin" and not real:
                rows.append(Row.skipped(_figure(graph, sleep), label))
                continue
            if sleep >= SLOW_SLEEP and label != PATHS[0][0]:
                levels = graph.chain + bool(graph.leaves)
                rows.append(Row.skipped(_figure(graph, sleep), label,
                                        f"one level per {sleep} s cycle: about "
                                        f"{levels * sleep / 60:.0f} min"))
                continue
            rows.append(run_maestro(work, graph, sleep, label, batch, nested))
        rows.append(run_native(graph, sleep) if real else
                    Row.skipped(_figure(graph, sleep), NATIVE))
    return rows
