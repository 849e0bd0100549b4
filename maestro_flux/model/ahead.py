"""Which steps go to Flux ahead of Maestro, and which jobs they wait on.

Maestro submits a step only once it has seen all of the step's parents finish,
one conductor cycle per level of the study's graph. Flux can hold the graph
itself: a job submitted with ``afterok:ID`` waits in DEPEND until job ID
completes, and fails with a ``dependency`` exception if ID fails. So a step can
be sent as soon as each of its parents has finished or has a job in Flux, waiting
on those jobs; when Maestro later submits the step, it adopts that job.

This module decides, from a snapshot of the graph, which steps to send next
(:func:`next_wave`) and which jobs already sent are no longer of use
(:func:`verdict`). It knows nothing of Maestro's classes or of Flux's calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class StepView:
    """One step of the graph, as the decision needs it."""

    name: str
    parents: tuple[str, ...]
    state: str  # the name of the step's Maestro State
    job: str | None = None  # the step's latest job id, if it has one
    in_flux: bool = False  # Maestro polls its job (in_progress): waiting, running or ending


@dataclass(frozen=True)
class AheadJob:
    """A job sent ahead for a step, and the parent jobs it waits on."""

    jobid: str
    #: (parent, the parent's job it waits on), or None for a parent that had finished.
    waits_on: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Send:
    """A step to send ahead now, waiting on ``after`` (the parents' jobs in Flux)."""

    name: str
    waits_on: tuple[tuple[str, str | None], ...]


class Verdict(Enum):
    """What becomes of a job sent ahead."""

    KEEP = "keep"  # Maestro will adopt it when the step is ready
    CANCEL = "cancel"  # of no use and maybe still in Flux: cancel it, forget it
    FORGET = "forget"  # ended without running (a parent failed): forget it


#: Maestro states of a step that has not been submitted yet.
UNSUBMITTED = "INITIALIZED"
FINISHED = "FINISHED"
#: A step sent ahead waits on at most this many parents' jobs. Each dependency Flux
#: resolves appends to the waiting job's eventlog, which the KVS rewrites whole, so a
#: job's dependencies cost the broker the square of their number: a funnel over 3,000
#: jobs made the sweep under it take twice as long (real flux-core 0.88.0; at 500, within noise).
#: A wider funnel goes ahead once its parents' jobs in Flux have fallen to this many,
#: or is Maestro's to submit when they have all finished.
MAX_WAITS = 128


def _parent_job(parent: StepView, ahead: Mapping[str, AheadJob]) -> tuple[bool, str | None]:
    """(usable, the job to wait on): a finished parent needs no wait; a parent with a
    job in Flux, Maestro's or sent ahead, is waited on; any other is not usable."""
    if parent.state == FINISHED:
        return True, None
    if parent.name in ahead:
        return True, ahead[parent.name].jobid
    if parent.in_flux and parent.job:
        return True, parent.job
    return False, None


def next_wave(steps: Mapping[str, StepView], ahead: Mapping[str, AheadJob],
              excluded: Iterable[str] = (), budget: int | None = None,
              max_waits: int | None = None) -> list[Send]:
    """Steps that can be sent now, in the graph's order, at most ``budget`` of them.

    A step is sent when it is unsubmitted, has no job ahead, is not ``excluded``
    (Maestro's own queue of ready steps), each of its parents has finished or has a
    job in Flux, and it would wait on at most ``max_waits`` jobs. Sending a wave makes
    its steps parents with jobs, so calling this again, with the new jobs in
    ``ahead``, gives the next level.
    """
    limit = MAX_WAITS if max_waits is None else max_waits
    skip = set(excluded)
    wave: list[Send] = []
    for step in steps.values():
        if budget is not None and len(wave) >= budget:
            break
        if step.state != UNSUBMITTED or step.name in ahead or step.name in skip:
            continue
        if not step.parents:
            continue  # a root is Maestro's to submit: it is ready at once
        waits_on = []
        for name in step.parents:
            usable, job = _parent_job(steps[name], ahead)
            if not usable:
                break
            waits_on.append((name, job))
        else:
            if sum(job is not None for _, job in waits_on) <= limit:
                wave.append(Send(step.name, tuple(waits_on)))
    return wave


def current_job(parent: StepView, ahead: Mapping[str, AheadJob]) -> str | None:
    """The parent's job now: Maestro's (adopted, or its own), else the one sent ahead."""
    if parent.job:
        return parent.job
    return ahead[parent.name].jobid if parent.name in ahead else None


def verdict(step: StepView, job: AheadJob, steps: Mapping[str, StepView],
            ahead: Mapping[str, AheadJob], ended_by_dependency: bool) -> Verdict:
    """Whether a job sent ahead for ``step`` is still the one Maestro should adopt.

    Not if the step is no longer waiting to be submitted (Maestro failed or
    canceled it), if Flux ended the job because a parent can never satisfy it, or
    if a parent it waits on has a newer job (Maestro restarted or resubmitted the
    parent, so this job waits on an attempt that will not complete).
    """
    if ended_by_dependency:
        return Verdict.FORGET
    if step.state != UNSUBMITTED:
        return Verdict.CANCEL
    for parent, waited in job.waits_on:
        if waited is not None and current_job(steps[parent], ahead) != waited:
            return Verdict.CANCEL
    return Verdict.KEEP


def throttle_room(throttle: int, in_flux: int, ahead: int) -> int | None:
    """How many more jobs the study may put in Flux (None: no limit, throttle 0).

    Maestro's throttle counts the steps it polls; jobs sent ahead are in Flux too
    (sites cap queued jobs per user), so they count against it.
    """
    if throttle <= 0:
        return None
    return max(0, throttle - in_flux - ahead)
