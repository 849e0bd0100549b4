"""The ``maestro-flux resume`` command (the work is maestro/resume.py's)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro import resume
from maestro_flux.maestro.study_state import STUDIES


def resume_study(args: argparse.Namespace) -> int:
    """Resume the study in ``args.directory``; the exit code is the study's, as with
    ``maestro run -fg`` (0 once it has finished)."""
    try:
        loaded = resume.load(args.directory)
    except resume.Finished as done:
        print(f"maestro-flux: {done}")
        return 0
    return take_up(loaded, args, "resuming")


def take_up(loaded: resume.Loaded, args: argparse.Namespace, doing: str,
            before: Callable[[], None] | None = None) -> int:
    """Drive the loaded study: its lock, the environment it was started with, its broker
    checked; ``before`` (a retry's changes) then runs, and the conductor, here (``-fg``)
    or in the background, inheriting the lock."""
    sleep = args.sleeptime or loaded.replay.options.get("sleep") or resume.DEFAULT_SLEEP
    folder = loaded.root / resume.journals.FOLDER
    lock = (STUDIES.adopt_lock(folder, args.lock_fd) if args.lock_fd is not None
            else resume.take_lock(loaded, sleep))
    env, difference = _environment(loaded, args)
    broker = resume.check_broker(resume.adapter_of(loaded))
    if difference and args.lock_fd is None:
        print(f"maestro-flux: submitting with the environment {loaded.study.name} was started "
              f"with; this shell's differs: {difference} (--here-env uses this one)",
              flush=True)
    if before is not None:
        before()
    if not args.fg:
        pid = resume.background(args.directory, _forwarded(args, sleep), lock, env)
        print(f"maestro-flux: {doing} {loaded.study.name} in the background (pid {pid}); "
              f"'maestro status {args.directory}' shows its progress")
        return 0
    maestro_graph.setup_logging(loaded.study, loaded.root)
    plan, by_token = resume.plan_for(loaded, broker, _progress(len(loaded.replay.unanswered())))
    resume.apply(loaded.graph, plan, broker, loaded.replay.attempts)
    maestro_graph.set_limits(loaded.graph, args.throttle, args.rlimit)
    print(f"maestro-flux: {doing} {loaded.study.name} from {loaded.whence}: "
          f"{plan.jobs_kept} job(s) in Flux kept ({by_token} found by their token), "
          f"{len(plan.ahead)} of them sent ahead; the steps not in Flux are submitted when "
          f"ready; a cycle every {sleep}s", flush=True)
    status = resume.monitor(loaded, sleep)
    print(f"maestro-flux: the study ended: {status.name}")
    return status.value


def _environment(loaded: resume.Loaded,
                 args: argparse.Namespace) -> tuple[dict[str, str], str | None]:
    """The environment to submit with (this process's from now on): the study's own,
    and how this shell's differs, unless --here-env."""
    started = resume.started_environment(loaded.replay)
    if started is None or args.here_env:
        return dict(os.environ), None
    difference = resume.environment_difference(started, os.environ)
    return resume.use_environment(started), difference


def _progress(open_count: int) -> Callable[[int, int, int], None]:
    """A progress line, once the search for open submissions takes over a second."""
    began = time.time()

    def show(looked: int, candidates: int, found: int) -> None:
        if time.time() - began > 1.0:
            print(f"maestro-flux: looking in Flux for {open_count} submission(s) whose id was "
                  f"not journaled: {looked} of {candidates} job(s) looked at, {found} found",
                  file=sys.stderr, flush=True)
    return show


def _forwarded(args: argparse.Namespace, sleep: int) -> list[str]:
    argv = ["resume", args.directory, "-s", str(sleep), "--here-env"]
    for flag, value in (("-t", args.throttle), ("-r", args.rlimit)):
        if value is not None:
            argv += [flag, str(value)]
    return argv
