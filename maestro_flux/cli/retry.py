"""``maestro-flux retry`` and ``maestro-flux cancel``: steering a study in place (the
work is maestro/steering.py's; a retry is then taken up as a resume is)."""

from __future__ import annotations

import argparse

from maestro_flux.cli.resume import take_up
from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro import resume, steering
from maestro_flux.maestro.conductor_lock import live_holder
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.selection import to_cancel

#: Seconds a cancel waits for the conductor's answer, beyond the study's own sleep.
ANSWER_SLACK = 30


def retry_study(args: argparse.Namespace) -> int:
    """Run again the steps that did not succeed (or those named, and all below them)."""
    loaded = resume.load(args.directory, finished_ok=True)
    name = loaded.study.name
    if not args.dry:
        holder = live_holder(loaded.root / resume.journals.FOLDER)
        if holder is not None:
            raise MaestroFluxError(f"{args.directory}: its conductor is still running "
                                   f"({holder.describe()}); a retry waits for it to end "
                                   "('maestro-flux cancel' stops chosen steps now)")
    chosen = steering.retry_plan(loaded.graph, args.steps, args.force)
    if args.dry:
        return _dry(loaded, chosen)
    if not chosen:
        print(f"maestro-flux: nothing to retry: every step of {name} FINISHED or is still "
              "in Flux")
        return 0

    def reset() -> None:
        attempts = steering.retry(loaded.root, loaded.graph, chosen, loaded.replay)
        loaded.replay.attempts.update(attempts)
        print(f"maestro-flux: {name}: {len(chosen)} step(s) to run again: "
              f"{_listed(chosen)}", flush=True)
    return take_up(loaded, args, "retrying", before=reset)


def _dry(loaded: resume.Loaded, chosen: list[str]) -> int:
    if not chosen:
        print(f"maestro-flux: nothing to retry in {loaded.study.name}")
        return 0
    print(f"maestro-flux: a retry of {loaded.study.name} would run these {len(chosen)} "
          "step(s) again, in graph order (nothing is submitted):")
    for step in chosen:
        attempt = loaded.replay.attempts.get(step, 1) + 1
        print(f"  {step}  {maestro_graph.state(loaded.graph, step)}, attempt {attempt}")
    return 0


def _listed(names: list[str], most: int = 8) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most
                                      else "")


def cancel_steps(args: argparse.Namespace) -> int:
    """Have the study's running conductor cancel the named steps and all below them."""
    loaded = resume.load(args.directory, finished_ok=True)
    name = loaded.study.name
    status = maestro_graph.completion(loaded.graph).name
    if status != "RUNNING":
        raise MaestroFluxError(f"{args.directory}: {name} has ended ({status}); nothing to "
                               "cancel")
    to_cancel(maestro_graph.step_facts(loaded.graph), args.steps)  # bad names: one line
    if live_holder(loaded.root / resume.journals.FOLDER) is None:
        raise MaestroFluxError(f"{args.directory}: no conductor drives {name}, so nothing was "
                               "canceled; 'maestro-flux resume' takes it up")
    request = steering.ask_cancel(loaded.root, args.steps)
    sleep = loaded.replay.options.get("sleep") or resume.DEFAULT_SLEEP
    answer = steering.answer_of(loaded.root, request, args.wait or sleep + ANSWER_SLACK)
    if answer is None and steering.withdraw(loaded.root, request):
        raise MaestroFluxError(f"{args.directory}: the conductor of {name} did not answer "
                               "in time; nothing was canceled")
    answer = answer or steering.answer_of(loaded.root, request, ANSWER_SLACK)
    if answer is None or "error" in answer:
        raise MaestroFluxError(f"{args.directory}: {(answer or {}).get('error', 'no answer')}")
    canceled = answer["canceled"]
    print(f"maestro-flux: {name}: canceled {len(canceled)} step(s)"
          + (f": {_listed(canceled)} ({answer['jobs']} job(s) in Flux)" if canceled else
             " (every step named, and below, had ended)"))
    return 0
