"""What waking on Flux costs and gives (maestro/wake.py, broker/events.py).

- **Idle load**: the requests a conductor's wait sends the broker per second while
  nothing happens, for a study of 10 and of 10,000 steps (held in Flux, pending), with
  each way of watching: the job manager's journal (the owner's) and job-list (a
  guest's). Counted at the handle, and the entries job-list answered with.
- **Cancel**: from ``maestro cancel`` to the last job of the study inactive, for a
  study started in the background under ``-s 600``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.report import Row
from maestro_flux.broker import bindings, cancel, events, listing
from maestro_flux.maestro import journal as journals
from maestro_flux.model import jobids


class Counting:
    """A handle that counts the requests sent through it."""

    def __init__(self, handle: Any) -> None:
        self._handle, self.requests = handle, 0

    def rpc(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return self._handle.rpc(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def hold(handle: Any, count: int) -> list[int]:
    flux = bindings.bindings()
    futures = []
    for n in range(count):
        jobspec = flux.job.JobspecV1.from_command(["true"])
        jobspec.cwd, jobspec.environment = "/tmp", {}
        jobspec.setattr("system.job.name", f"held{n}")
        futures.append(flux.job.submit_async(handle, jobspec, urgency=0))
    return [int(future.get_id()) for future in futures]


def idle_rows(sizes: list[int], seconds: float = 10.0) -> list[Row]:
    rows = []
    handle = bindings.connect(None)
    for size in sizes:
        ids = set(hold(handle, size))
        figure = f"idle wait, a study of {size} steps pending in Flux"
        ways = [("job-list (a guest's way)", events.ListingWatch)]
        if events.journal_available():
            ways.insert(0, ("the job manager's journal (the owner's way)", events.JournalWatch))
        for label, kind in ways:
            counting = Counting(bindings.connect(None))
            watch = kind(counting)
            started, before = time.monotonic(), counting.requests
            while time.monotonic() - started < seconds:
                watch.changed(ids, set(), 0.25, time.time())
            rate = (counting.requests - before) / (time.monotonic() - started)
            watch.close()
            rows.append(Row(figure, label, rate, "requests/s",
                            note=f"over {seconds:g} s; the watch's own opening request aside"))
        cancel.cancel_all(handle, list(ids), "benchmark done")
    return rows


def cancel_latency(work: Path) -> Row:
    """``maestro cancel`` of a running study under -s 600, to its last job inactive."""
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "cancel.yaml"
    spec.write_text(yaml.safe_dump({
        "description": {"name": "cancel", "description": "canceled while it runs"},
        "batch": {"type": "flux"},
        "study": [{"name": "long", "description": "runs", "run": {"cmd": "sleep 300"}},
                  {"name": "after", "description": "waits in Flux",
                   "run": {"cmd": "true", "depends": ["long"]}}]}, sort_keys=False))
    outdir = work / "out"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    maestro = [sys.executable, "-m", "benchmarks.maestro_rss", os.devnull]
    subprocess.run([*maestro, "run", "-y", "-s", "600", "-o", str(outdir), str(spec)],
                   check=True, capture_output=True, env=env)
    handle = bindings.connect(None)
    ids = _wait_for_running(outdir, handle)
    started = time.perf_counter()
    subprocess.run([*maestro, "cancel", "-y", str(outdir)], check=True, capture_output=True,
                   env=env)
    while time.perf_counter() - started < 120:
        states = {int(e["id"]): e["state"] for e in listing.list_jobs(handle)}
        if all(states.get(jobid) == 64 for jobid in ids):
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    return Row("maestro cancel of a running study under -s 600", "to its last job inactive",
               seconds, "s", note=f"{len(ids)} jobs, one of them sent ahead")


def _wait_for_running(outdir: Path, handle: Any, timeout: float = 120) -> set[int]:
    end = time.time() + timeout
    while time.time() < end:
        try:
            ids = {jobids.parse_jobid(s.jobid) for s in journals.read(outdir).sent.values()
                   if s.jobid}
        except OSError:
            ids = set()
        states = {int(e["id"]): e["state"] for e in listing.list_jobs(handle)}
        if len(ids) == 2 and 16 in {states.get(jobid) for jobid in ids}:
            return ids
        time.sleep(0.1)
    raise RuntimeError("the study's first job never ran")


def wake_rows(work: Path, sizes: list[int]) -> list[Row]:
    print("  idle load ...", file=sys.stderr, flush=True)
    rows = idle_rows(sizes)
    print("  cancel ...", file=sys.stderr, flush=True)
    rows.append(cancel_latency(work / "cancel"))
    return rows
