"""How long ``maestro-flux resume`` takes on a large study killed in its first cycle.

The instance first holds ``earlier`` jobs of the same spec, named as its steps: earlier
runs of the study, first ended (cancelled: inactive, as finished runs are), then held
(pending, urgency 0: the worst case, since job-list keeps its pending jobs sorted and the
killed study's jobs are still moving through the broker). A study of ``steps`` independent
steps and a funnel is started with ``maestro run -fg`` and its conductor is SIGKILLed when its
first cycle has taken ``kill_at`` answers (tests/inject.py): the rest of the cycle's
jobs are in Flux, their ids nowhere but in Flux. The figure is the time from
``maestro-flux resume -fg`` starting to its line saying what it kept (load, lock,
broker check, the search by token, reconcile), locally and, with ``--ssh``, with the
study's broker named ``ssh://`` (a throw-away sshd on loopback). Run with
``python -m benchmarks --only resume [--ssh]``. Beside each figure, the search's one
``job-list.list`` request timed alone just before resume starts: what the broker itself
takes to answer it at that moment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.report import Row
from maestro_flux.broker import bindings, cancel, identity, listing

TESTS = Path(__file__).resolve().parent.parent / "tests"
WINDOW = 1000


def spec(folder: Path, steps: int, uri: str | None) -> Path:
    study = {
        "description": {"name": f"resume{steps}", "description": "killed in its first cycle"},
        "batch": {"type": "flux", **({"flux_uri": uri} if uri else {})},
        "study": [
            {"name": "leaf", "description": "a sweep", "run": {"cmd": "true # $(X)"}},
            {"name": "funnel", "description": "all leaves",
             "run": {"cmd": "true", "depends": ["leaf_*"]}},
        ],
        "global.parameters": {"X": {"values": list(range(steps)), "label": "X.%%"}},
    }
    path = folder / f"resume{steps}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def hold_earlier_jobs(count: int, steps: int) -> set[int]:
    """``count`` held jobs named as the study's steps (earlier runs of its spec)."""
    flux = bindings.bindings()
    handle = bindings.connect(None)
    held: set[int] = set()
    for start in range(0, count, WINDOW):
        futures = []
        for n in range(start, min(start + WINDOW, count)):
            jobspec = flux.job.JobspecV1.from_command(["true"])
            jobspec.cwd, jobspec.environment = "/tmp", {}
            jobspec.setattr("system.job.name", f"leaf_X.{n % steps}")
            futures.append(flux.job.submit_async(handle, jobspec, urgency=0))
        held.update(future.get_id() for future in futures)
    return held


def cancel_everything(keep: set[int] = frozenset()) -> None:
    """Cancel every active job but those in ``keep`` (the earlier jobs, held for the
    next path: each path is timed against the same instance)."""
    handle = bindings.connect(None)
    ids = [int(entry["id"]) for entry in listing.list_jobs(handle)
           if entry.get("state") != 64 and int(entry["id"]) not in keep]
    for start in range(0, len(ids), WINDOW):
        cancel.cancel_all(handle, ids[start:start + WINDOW], "benchmark done")


def kill_in_first_cycle(folder: Path, study_spec: Path, kill_at: int, env: dict) -> Path:
    outdir = folder / "study"
    done = subprocess.run(
        [sys.executable, str(TESTS / "inject.py"), "kill:accepted", "maestro", "run", "-fg",
         "-y", "-s", "60", "-o", str(outdir), str(study_spec)],
        env={**env, "MAESTRO_FLUX_INJECT_STEP": "leaf_*",
             "MAESTRO_FLUX_INJECT_NTH": str(kill_at)},
        capture_output=True, text=True)
    if done.returncode != -9:
        raise RuntimeError(f"the conductor was not killed (rc {done.returncode}): "
                           f"{done.stderr[-1000:]}")
    return outdir


def time_resume(outdir: Path, env: dict) -> tuple[float, str]:
    """Seconds until resume says what it kept, and that line."""
    log = outdir / "resume-bench.log"
    started = time.perf_counter()
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "maestro_flux.cli.main", "resume",
                                 str(outdir), "-fg", "-s", "60"], stdout=handle,
                                stderr=subprocess.STDOUT, env=env)
    try:
        while proc.poll() is None:
            said = [line for line in log.read_text().splitlines()
                    if line.startswith("maestro-flux: resuming")]
            if said:
                seconds = time.perf_counter() - started
                print(log.read_text(), file=sys.stderr, flush=True)  # what resume said
                return seconds, said[0]
            time.sleep(0.02)
        raise RuntimeError(f"resume ended first: {log.read_text()[-1500:]}")
    finally:
        proc.kill()
        proc.wait()


def listing_alone(steps: int) -> float:
    """Seconds for the search's one listing request, sent alone (the broker's floor)."""
    names = [f"leaf_X.{n}" for n in range(steps)]
    handle = bindings.connect(None)
    started = time.perf_counter()
    identity.candidates(handle, names, time.time() - 3600)
    return time.perf_counter() - started


def one(work: Path, steps: int, kill_at: int, where: str, uri: str | None,
        env: dict, earlier: set[int], figure: str) -> list[Row]:
    folder = work / where
    folder.mkdir(parents=True)
    print(f"  {where}: a {steps + 1}-step study, killed at answer {kill_at} ...",
          file=sys.stderr, flush=True)
    outdir = kill_in_first_cycle(folder, spec(folder, steps, uri), kill_at, env)
    floor = listing_alone(steps)
    seconds, line = time_resume(outdir, env)
    found = re.search(r"\((\d+) found by their token\)", line)
    cancel_everything(keep=earlier)
    return [Row(figure, f"maestro-flux resume, {where}", seconds, "s",
                note=f"{found.group(1) if found else '?'} jobs found by their token",
                extra={"line": line}),
            Row(figure, f"job-list.list alone, sent just before ({where} run)", floor, "s",
                note="the search's one listing request; the broker's answer time")]


def earlier_jobs(count: int, steps: int, state: str) -> set[int]:
    """Earlier runs of the spec: ``held`` (pending, urgency 0) or ``ended`` (cancelled)."""
    print(f"  {count} earlier jobs of the same spec, {state} ...", file=sys.stderr, flush=True)
    held = hold_earlier_jobs(count, steps)
    if state == "held":
        return held
    handle = bindings.connect(None)
    ids = sorted(held)
    for start in range(0, len(ids), WINDOW):
        cancel.cancel_all(handle, ids[start:start + WINDOW], "an earlier run, ended")
    return set()


def resume_rows(work: Path, steps: int, earlier: int, kill_at: int, ssh: bool) -> list[Row]:
    """Each where (local, over ssh://), with the earlier jobs ended, then held."""
    work.mkdir(parents=True, exist_ok=True)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path}
    server = None
    if ssh:
        sys.path.insert(0, str(TESTS))
        from loopback_sshd import start_sshd

        server = start_sshd(work / "sshd")
    rows: list[Row] = []
    try:
        for state in ("ended", "held"):
            keep = earlier_jobs(earlier, steps, state)
            figure = (f"resume of a {steps + 1}-step study killed in its first cycle, "
                      f"{earlier} earlier jobs of its spec {state}")
            rows += one(work / state, steps, kill_at, "local", None, env, keep, figure)
            if server is not None:
                remote = {k: v for k, v in env.items() if k != "FLUX_URI"}
                remote["FLUX_SSH"] = server.client
                rows += one(work / state, steps, kill_at, "over ssh://",
                            server.uri(os.environ["FLUX_URI"]), remote, keep, figure)
            cancel_everything()
    finally:
        if server is not None:
            server.stop()
    return rows
