"""The ``maestro-flux resume`` command (the work is maestro/resume.py's)."""

from __future__ import annotations

import argparse

from maestro_flux.maestro import resume
from maestro_flux.maestro.maestro_imports import import_maestro


def resume_study(args: argparse.Namespace) -> int:
    """Resume the study in ``args.directory``; the exit code is the study's, as with
    ``maestro run -fg`` (0 once it has finished)."""
    try:
        loaded = resume.load(args.directory)
    except resume.Finished as done:
        print(f"maestro-flux: {done}")
        return 0
    sleep = args.sleeptime or loaded.replay.options.get("sleep") or resume.DEFAULT_SLEEP
    resume.refuse_if_alive(loaded.root, sleep)
    if not args.fg:
        pid = resume.background(args.directory, _forwarded(args, sleep))
        print(f"maestro-flux: resuming {loaded.study.name} in the background (pid {pid}); "
              f"'maestro status {args.directory}' shows its progress")
        return 0
    import_maestro("maestrowf.conductor").setup_logging(
        loaded.study.name, str(loaded.root), 2, None, True)
    plan, by_token = resume.plan_for(loaded)
    resume.apply(loaded.graph, plan)
    if args.throttle is not None:
        loaded.graph.update_throttle(args.throttle)
    if args.rlimit is not None:
        loaded.graph.update_rlimit(args.rlimit)
    print(f"maestro-flux: resuming {loaded.study.name} from {loaded.whence}: "
          f"{plan.jobs_kept} job(s) in Flux kept ({by_token} found by their token), "
          f"{len(plan.ahead)} of them sent ahead; the steps not in Flux are submitted when "
          f"ready; a cycle every {sleep}s", flush=True)
    status = resume.monitor(loaded, sleep)
    print(f"maestro-flux: the study ended: {status.name}")
    return status.value


def _forwarded(args: argparse.Namespace, sleep: int) -> list[str]:
    argv = [args.directory, "-s", str(sleep)]
    for flag, value in (("-t", args.throttle), ("-r", args.rlimit)):
        if value is not None:
            argv += [flag, str(value)]
    return argv
