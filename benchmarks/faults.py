"""Killing the conductor: does every step still run exactly once after resume?

A study (a sweep of N steps, a funnel, a chain of 3) is started in the background
with ``maestro run``; its conductor is SIGKILLed at a random moment while jobs are
in Flux, ``maestro-flux resume -fg`` takes the study up again, is killed in turn,
and so on, ``--kills`` times per study or until it ends; the last resume runs to
the end. Each step appends a line to a file in its workspace each time it runs,
so afterwards: a step with more lines than it should have ran twice, a step with
fewer, or not in the state it should end in, was lost.

Kinds of study (``--fault-kinds``): ``plain``; ``hashws`` (``maestro run --hashws``);
``restart`` (the chain's middle step times out, and its restart, which writes
elsewhere, finishes it); ``failing`` (a failing step below the funnel, and one
below it that must never run). ``--ssh``: each kind again with the study's broker
named ``ssh://`` (a throw-away sshd on loopback). Run with
``python -m benchmarks --only faults``.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.report import Row
from maestro_flux.maestro import journal as journals

KINDS = ("plain", "hashws", "restart", "failing")


def spec(folder: Path, leaves: int, kind: str = "plain", uri: str | None = None) -> Path:
    run = "echo run >> ran; sleep {}"
    chain = [{"name": f"chain{n}", "description": "a chain",
              "run": {"cmd": run.format(2), "depends": [f"chain{n - 1}" if n else "funnel"]}}
             for n in range(3)]
    if kind == "restart":  # times out once; the restart finishes it (and writes elsewhere)
        chain[1]["run"].update(cmd=run.format(60), restart="echo run >> restarted",
                               walltime="00:00:03")
    failing = [{"name": "bad", "description": "fails",
                "run": {"cmd": "echo run >> ran; exit 3", "depends": ["funnel"]}},
               {"name": "below_bad", "description": "never runs",
                "run": {"cmd": "echo run >> ran", "depends": ["bad"]}}]
    study = {
        "description": {"name": f"faults{leaves}{kind}", "description": "killed and resumed"},
        "batch": {"type": "flux", **({"flux_uri": uri} if uri else {})},
        "study": [
            {"name": "leaf", "description": "a sweep", "run": {"cmd": run.format("1 # $(X)")}},
            {"name": "funnel", "description": "all leaves",
             "run": {"cmd": run.format(1), "depends": ["leaf_*"]}},
            *chain, *(failing if kind == "failing" else []),
        ],
        "global.parameters": {"X": {"values": list(range(leaves)), "label": "X.%%"}},
    }
    path = folder / f"faults{leaves}{kind}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def expected(kind: str) -> dict[str, tuple[str, int]]:
    """The steps that do not end FINISHED after one run: (state, runs)."""
    return {"bad": ("FAILED", 1), "below_bad": ("FAILED", 0)} if kind == "failing" else {}


def _maestro(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.maestro_rss", os.devnull, *args]


def _beat_pid(outdir: Path, timeout: float = 120) -> int | None:
    end = time.time() + timeout
    while time.time() < end:
        beat = journals.heartbeat(outdir)
        if beat:
            return int(beat["pid"])
        time.sleep(0.1)
    return None


def _resume(outdir: Path, env: dict,
            timeout: float = 600) -> tuple[subprocess.Popen, float | None]:
    """A foreground resume, and how long it took to load and reconcile (until it says
    'resuming'; None if it ended without saying it, the study being over). Its output
    goes to a file: a pipe nobody reads would stop it once full."""
    log = outdir / "meta" / "maestro-flux" / f"resume-{time.time_ns()}.log"
    started = time.perf_counter()
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "maestro_flux.cli.main", "resume",
                                 str(outdir), "-fg", "-s", "1"], stdout=handle,
                                stderr=subprocess.STDOUT, env=env)
    while time.perf_counter() - started < timeout:
        if "maestro-flux: resuming" in log.read_text():
            return proc, time.perf_counter() - started
        if proc.poll() is not None:
            return proc, None
        time.sleep(0.05)
    return proc, None


def run_faults(work: Path, leaves: int, kills: int, rng: random.Random, kind: str = "plain",
               ssh: Any = None) -> tuple[dict, int]:
    """One study, killed up to ``kills`` times; its tallies and the kills made."""
    outdir = work / f"out-{leaves}-{len(list(work.glob('out-*')))}"
    # Maestro starts its background conductor by name: it must be on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    uri = None
    if ssh is not None:  # the study's broker named ssh://, and nothing else pointing at it
        uri = ssh.uri(env.pop("FLUX_URI"))
        env["FLUX_SSH"] = ssh.client
    options = ["--hashws"] if kind == "hashws" else []
    subprocess.run(_maestro("run", "-y", "-s", "1", *options, "-o", str(outdir),
                            str(spec(work, leaves, kind, uri))), capture_output=True,
                   check=True, env=env)
    victim, proc, killed, times = _beat_pid(outdir), None, 0, []
    while killed < kills and victim is not None and _alive(victim):
        time.sleep(rng.uniform(0.3, 2.5))
        if not _alive(victim):
            break  # the study ended first
        os.kill(victim, signal.SIGKILL)
        killed += 1
        proc, took = _resume(outdir, env)
        victim = proc.pid if took is not None else None
        times += [took] if took is not None else []
    while victim is not None and _alive(victim):  # the last conductor runs to the end
        time.sleep(0.5)
    return _tally(outdir, leaves + 4 + 2 * (kind == "failing"), times, expected(kind)), killed


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is a child of ours
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (OSError, IndexError):
        return "Z"


def _tally(outdir: Path, steps: int, resume_times: list[float],
           unfinished: dict[str, tuple[str, int]]) -> dict:
    with open(outdir / "status.csv") as handle:
        rows = list(csv.DictReader(handle))
    # Each step's workspace, as status.csv names it (a sweep's are "leaf/X.0").
    ran = {str(path.parent.relative_to(outdir)): len(path.read_text().splitlines())
           for path in outdir.glob("**/ran")}
    twice = lost = 0
    for row in rows:
        state, runs = unfinished.get(row["Step Name"], ("FINISHED", 1))
        count = ran.get(row["Workspace"], 0)
        twice += count > runs
        lost += row["State"] != state or count < runs
    return {"twice": twice, "lost": lost + max(0, steps - len(rows)),
            "resume_times": resume_times}


def fault_rows(work: Path, sizes: list[int], kills: int, seed: int | None,
               kinds: list[str] = ("plain",), ssh: bool = False,
               max_studies: int = 5) -> list[Row]:
    """Per kind and size (and over ssh://), studies run and killed until ``kills`` kills
    were made (a small study may end before), at most ``max_studies`` of them."""
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    server = _sshd(work) if ssh else None
    rows = []
    try:
        for where in ["local", *(["over ssh://"] if server else [])]:
            for kind in kinds:
                for leaves in sizes:
                    rows += _kind_rows(work / kind, leaves, kills, rng, kind,
                                       server if where != "local" else None, max_studies)
    finally:
        if server:
            server.stop()
    return rows


def _sshd(work: Path) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from loopback_sshd import start_sshd

    return start_sshd(work / "sshd")


def _kind_rows(work: Path, leaves: int, kills: int, rng: random.Random, kind: str,
               ssh: Any, max_studies: int) -> list[Row]:
    work.mkdir(parents=True, exist_ok=True)
    totals, killed, studies = {"twice": 0, "lost": 0, "resume_times": []}, 0, 0
    where = "over ssh://" if ssh else "local"
    while killed < kills and studies < max_studies:
        print(f"  {kind} {where}, {leaves} leaves, kills so far {killed} of {kills} ...",
              file=sys.stderr, flush=True)
        tally, made = run_faults(work, leaves, kills - killed, rng, kind, ssh)
        killed, studies = killed + made, studies + 1
        for key in totals:
            totals[key] += tally[key]
    steps = leaves + 4 + 2 * (kind == "failing")
    return _rows(f"{steps} steps, {kind}, {where}", studies, killed, totals)


def _rows(what: str, studies: int, killed: int, totals: dict) -> list[Row]:
    figure = f"{studies} studies of {what}, conductor SIGKILLed {killed} times"
    times = totals["resume_times"]
    return [Row(figure, "steps run twice", totals["twice"], "steps", note="must be 0"),
            Row(figure, "steps lost", totals["lost"], "steps", note="must be 0"),
            Row(figure, "resume: load and reconcile, slowest", max(times) if times else None,
                "s", note=f"{len(times)} resumes")]
