"""The study's jobs in time (``maestro-flux report``): each job's spans (waiting on
its dependencies, queued, running), the critical path, and the summary figures,
including what Flux holding the dependencies saved against one level per conductor
cycle. Pure functions on the plain data of model/study_view.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from maestro_flux.model.study_view import FluxJob, GraphStep, StepView, category, reason

#: The phases of a job, in order, with the FluxJob times that open and close them.
PHASES = (("waiting", "t_depend", "t_released"), ("queued", "t_released", "t_run"),
          ("running", "t_run", "t_cleanup"), ("cleanup", "t_cleanup", "t_inactive"))


@dataclass(frozen=True)
class Span:
    """One phase of one job: [start, end) in epoch seconds."""

    phase: str  # waiting, queued, running, cleanup; "maestro" where only Maestro's times are known
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class JobTimes:
    """One job of a step on the timeline."""

    step: str
    jobid: str | None
    attempt: int  # 1 for the step's first job
    category: str  # how it ended (study_view.CATEGORIES)
    spans: tuple[Span, ...]
    reason: str | None = None
    submitted: float | None = None  # when Flux accepted it (t_submit)

    @property
    def start(self) -> float | None:
        return self.spans[0].start if self.spans else None

    @property
    def end(self) -> float | None:
        return self.spans[-1].end if self.spans else None

    def seconds(self, phase: str) -> float:
        return sum(span.seconds for span in self.spans if span.phase == phase)


def spans(job: FluxJob, now: float) -> tuple[Span, ...]:
    """A job's phases from its times; an active job's last phase runs until ``now``.
    A job that ran but has no ``t_released`` (a broker before 0.88 whose eventlog was
    not read) counts as queued from the moment it entered DEPEND; one that never ran
    nor was released waited on its dependencies until its end."""
    times = {name: getattr(job, name) for name in
             ("t_depend", "t_released", "t_run", "t_cleanup", "t_inactive")}
    if times["t_depend"] is None:
        times["t_depend"] = job.t_submit
    if times["t_released"] is None and times["t_depend"] is not None and (
            times["t_run"] is not None or job.state in ("PRIORITY", "SCHED")):
        times["t_released"] = times["t_depend"]  # released at some moment Flux did not say
    order = ["t_depend", "t_released", "t_run", "t_cleanup", "t_inactive"]
    out = []
    for phase, opens, _ in PHASES:
        start = times[opens]
        if start is None:
            continue
        later = [times[name] for name in order[order.index(opens) + 1:]
                 if times[name] is not None]
        # the next phase that came ends this one; none came: it ended here, or is still here
        end = later[0] if later else (now if job.active else start)
        out.append(Span(phase, start, max(start, end)))
    return tuple(span for span in out if span.seconds > 0 or span.phase == "running")


def timeline(steps: Sequence[GraphStep], views: Sequence[StepView],
             jobs: Mapping[str, FluxJob], now: float,
             history: Mapping[str, tuple[str, ...]]) -> list[JobTimes]:
    """Every job of every step (``history``: the step's job ids, oldest first), from
    Flux's times where Flux knows the job, else from Maestro's own."""
    state = {view.name: view for view in views}
    out = []
    for step in steps:
        ids = history.get(step.name, ())
        for attempt, jobid in enumerate(ids, 1):
            job = jobs.get(jobid)
            if job is not None:
                out.append(JobTimes(step.name, jobid, attempt, category(step.state, job),
                                    spans(job, now), reason(job), job.t_submit))
            elif attempt == len(ids) and step.submitted:
                end = step.ended or (now if step.name in state and
                                     state[step.name].category not in
                                     ("done", "failed", "timed out", "cancelled")
                                     else step.submitted)
                out.append(JobTimes(step.name, jobid, attempt, state[step.name].category,
                                    (Span("maestro", step.submitted, max(step.submitted,
                                                                         end)),),
                                    state[step.name].reason, step.submitted))
    return out


def critical_path(steps: Sequence[GraphStep], ends: Mapping[str, float]) -> list[str]:
    """The chain of steps that set the study's end: the step that ended last, the
    parent of it that ended last (the one that let it go), and so on to a root."""
    by_name = {step.name: step for step in steps}
    known = {name: end for name, end in ends.items() if name in by_name}
    if not known:
        return []
    current = max(known, key=lambda name: (known[name], name))
    path = [current]
    seen = {current}
    while True:
        parents = [p for p in by_name[current].parents if p in known and p not in seen]
        if not parents:
            break
        current = max(parents, key=lambda name: (known[name], name))
        path.append(current)
        seen.add(current)
    return path[::-1]


def one_level_per_cycle(steps: Sequence[GraphStep], durations: Mapping[str, float],
                        start: float, sleep: float) -> float:
    """The study's wall time had each step been submitted only at the first conductor
    cycle after its parents ended (Maestro without Flux holding the dependencies): cycles
    every ``sleep`` seconds from ``start``; ``durations``: each step's time from being
    let go to its end (queued, running, cleanup), 0 for a step that never ran."""
    by_name = {step.name: step for step in steps}
    order = _topological(steps)
    ends: dict[str, float] = {}
    for name in order:
        parents = [p for p in by_name[name].parents if p in ends]
        ready = max((ends[p] for p in parents), default=start)
        ticks = math.ceil((ready - start) / sleep - 1e-9) if sleep > 0 else 0
        submitted = start + max(0, ticks) * sleep
        ends[name] = submitted + durations.get(name, 0.0)
    return max(ends.values(), default=start) - start


def _topological(steps: Sequence[GraphStep]) -> list[str]:
    by_name = {step.name: step for step in steps}
    done: set[str] = set()
    order: list[str] = []
    for first in steps:
        stack = [(first.name, False)]
        while stack:
            name, expanded = stack.pop()
            if name in done:
                continue
            if expanded:
                done.add(name)
                order.append(name)
                continue
            stack.append((name, True))
            stack.extend((p, False) for p in by_name[name].parents
                         if p in by_name and p not in done)
    return order


@dataclass(frozen=True)
class Summary:
    """The report's figures (seconds)."""

    wall: float
    running: float  # sum of run times
    queued: float
    waiting: float  # on dependencies, in Flux
    jobs: int
    steps: int
    counts: Mapping[str, int]
    failures: tuple[tuple[str, str], ...]  # (step, reason)
    critical: tuple[str, ...]
    sleep: float | None = None  # the conductor's sleep, if known
    per_cycle_wall: float | None = None  # one level per conductor cycle, estimated
    held: int = 0  # steps whose jobs waited on their parents in Flux
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def saved(self) -> float | None:
        if self.per_cycle_wall is None:
            return None
        return self.per_cycle_wall - self.wall


def summarize(steps: Sequence[GraphStep], views: Sequence[StepView],
              times: Sequence[JobTimes], sleep: float | None, held: int,
              now: float) -> Summary:
    """The figures of the report."""
    starts = [t.submitted or t.start for t in times if t.start is not None]
    ends = [t.end for t in times if t.end is not None]
    wall = (max(ends) - min(starts)) if starts and ends else 0.0
    last: dict[str, JobTimes] = {}
    for entry in times:
        last[entry.step] = entry
    step_ends = {name: entry.end for name, entry in last.items() if entry.end is not None}
    counts: dict[str, int] = {}
    for view in views:
        counts[view.category] = counts.get(view.category, 0) + 1
    failures = tuple((view.name, view.reason or view.category) for view in views
                     if view.category in ("failed", "timed out", "cancelled", "unknown"))
    per_cycle = None
    if sleep and starts:
        durations = {name: sum(s.seconds for s in entry.spans if s.phase != "waiting")
                     for name, entry in last.items()}
        per_cycle = one_level_per_cycle(steps, durations, min(starts), sleep)
    return Summary(wall=wall, running=sum(t.seconds("running") for t in times),
                   queued=sum(t.seconds("queued") for t in times),
                   waiting=sum(t.seconds("waiting") for t in times), jobs=len(times),
                   steps=len(views), counts=counts, failures=failures,
                   critical=tuple(critical_path(steps, step_ends)), sleep=sleep,
                   per_cycle_wall=per_cycle, held=held)


def duration_text(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h03m``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
