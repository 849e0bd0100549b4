"""Steps sent to Flux ahead of Maestro, with Flux holding their dependencies.

After each of Maestro's rounds (pipeline.py), :func:`send` submits every step
whose parents have all finished or have a job in Flux, its job waiting on theirs
(``afterok``), level after level, so that a whole chain or funnel is in Flux after
the first round (model/ahead.py decides which steps and on which jobs). The job
is kept by the study's submissions (submissions.py); when Maestro submits the step,
the adapter hands Maestro that job's id, so Maestro's records, restarts and states
are what they would be without it.

Before each round and right after it, :func:`prune` drops the jobs that are no
longer of use (Flux ended them with a ``dependency`` exception because a parent
failed; a parent was restarted, so they wait on the wrong attempt; Maestro ended the
step, or a parent, as FAILED or UNKNOWN) and cancels those still in Flux, so that
none of them starts.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from maestro_flux.broker import jobspec as jobspecs
from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro.study_state import StudyState
from maestro_flux.maestro.submissions import Accepted, Outcome, Pending
from maestro_flux.model import jobids
from maestro_flux.model.ahead import AheadJob, Send, Verdict, next_wave, verdict
from maestro_flux.model.ahead import throttle_room as room_for

LOGGER = logging.getLogger(__name__)
#: How old a poll prune may read the jobs sent ahead from: a parent's dependency
#: exception seen a second late only delays forgetting a job that will never run.
PRUNE_STALE = 2.0


def throttle_room(graph: Any, study: StudyState) -> int | None:
    """How many more jobs the study may put in Flux under Maestro's throttle."""
    return room_for(maestro_graph.throttle(graph), len(maestro_graph.in_progress(graph)),
                    len(study.ahead) + len(study.submissions.cancelling))


def prune(graph: Any, study: StudyState, broker: Any) -> None:
    """Forget the jobs sent ahead that Maestro must not adopt; cancel those in Flux
    (they leave the study's jobs once the broker confirms)."""
    submissions = study.submissions
    if not study.ahead:
        submissions.confirm_cancels(broker)
        return
    steps = maestro_graph.snapshot(graph)
    numbers = {name: jobids.parse_jobid(job.jobid) for name, job in study.ahead.items()}
    statuses = broker.statuses(set(numbers.values()), max_age=PRUNE_STALE)
    verdicts = {}
    for name, job in study.ahead.items():
        status = statuses.get(numbers[name])
        by_dependency = status is not None and status.exception_type == "dependency"
        verdicts[name] = verdict(steps[name], job, steps, study.ahead, by_dependency)
        if verdicts[name] is not Verdict.KEEP:
            LOGGER.info("maestro-flux: job %s of step '%s' is no longer of use (%s)",
                        job.jobid, name, status.reason() if by_dependency else
                        "its step or a parent it waits on has moved on")
    submissions.drop(verdicts, broker)


def send(graph: Any, study: StudyState, adapter: Any) -> int:
    """Send every step that can go ahead now, level after level; returns how many.

    A step that cannot be sent (bad input, a refusal: a parent's job already
    failed, say) is left to Maestro, which submits or fails it as it would anyway.
    """
    submissions = study.submissions
    sent, left = 0, set(maestro_graph.ready(graph)) | set(submissions.unresolved)
    left |= set(submissions.cancelling)
    while True:
        wave = next_wave(maestro_graph.snapshot(graph), study.ahead, left,
                         throttle_room(graph, study))
        if not wave:
            break
        for item, outcome in _send_wave(graph, adapter, wave, study):
            if isinstance(outcome, Accepted):
                sent += 1
            else:
                left.add(item.name)
                LOGGER.info("maestro-flux: step '%s' not sent ahead (%s); it is submitted "
                            "when Maestro finds it ready", item.name, _why(outcome))
    if sent:
        LOGGER.info("maestro-flux: %d step(s) sent ahead, waiting in Flux on their parents",
                    sent)
    return sent


def _why(outcome: Any) -> str:
    return getattr(outcome, "line", None) or str(getattr(outcome, "error", outcome))


def _send_wave(graph: Any, adapter: Any, wave: list[Send],
               study: StudyState) -> Iterator[tuple[Send, Outcome | Exception]]:
    """Send a wave's jobs together, then take their answers, each id kept by the
    study's submissions before it is journaled."""
    sent: list[tuple[Send, Pending | Exception]] = []
    for item in wave:
        try:
            sent.append((item, _send_one(graph, adapter, item, study)))
        except Exception as err:  # bad input, unreachable broker: Maestro's turn
            sent.append((item, err))
    submissions = study.submissions
    for item, pending in sent:
        if isinstance(pending, Exception):
            yield item, pending
            continue
        yield item, submissions.settle(pending, lambda outcome, i=item: _keep(study, i, outcome))


def _keep(study: StudyState, item: Send, outcome: Outcome) -> None:
    if isinstance(outcome, Accepted):
        study.ahead[item.name] = AheadJob(outcome.jobid, item.waits_on)


def _send_one(graph: Any, adapter: Any, item: Send, study: StudyState) -> Pending:
    # Written in the workspace even under --usetmp: the job may start after a clean-up.
    step, script = maestro_graph.write_scripts(graph, item.name, adapter, keep_out_of_tmp=True)
    cwd = maestro_graph.workspace(graph, item.name)
    planner = adapter.planner
    jobspec, urgency, flags = planner.jobspec(step, script, cwd)
    jobspecs.add_afterok(jobspec, [job for _, job in item.waits_on if job is not None])
    broker = adapter.broker()
    urgency, flags = adapter.as_submitter(broker, urgency, flags)
    return study.submissions.send(broker, item.name, jobspec, urgency, flags, cwd,
                                  kind="ahead", name=planner.job_name(step, cwd),
                                  asks=planner.asks(step, cwd), waits_on=item.waits_on)


class ReadyQueue:
    """Maestro's queue of ready steps for one round, under a throttle, in O(1) a pop.

    Maestro pops ``min(throttle - in_progress, len(queue))`` steps, and asks ``name in
    queue`` for every step it finds ready. Steps with a job sent ahead come out first
    (adopting a job puts nothing new in Flux), and the length counts the others only
    up to what the throttle leaves once the jobs sent ahead are counted, so the study
    never has more jobs in Flux than ``-t`` allows. Two deques (adopting, the rest)
    and a count per name keep every operation O(1); the pipeline puts a plain deque
    back before Maestro pickles the graph.
    """

    def __init__(self, items: Iterable[str], study: StudyState, graph: Any) -> None:
        self._study, self._graph = study, graph
        self._adopting: deque[str] = deque()
        self._rest: deque[str] = deque()
        self._count: dict[str, int] = {}
        for name in items:
            self.append(name)

    def append(self, name: str) -> None:
        (self._adopting if name in self._study.ahead else self._rest).append(name)
        self._count[name] = self._count.get(name, 0) + 1

    def _taken(self, name: str) -> str:
        left = self._count[name] - 1
        if left:
            self._count[name] = left
        else:
            del self._count[name]
        return name

    def popleft(self) -> str:
        while self._adopting:
            name = self._adopting.popleft()
            if name in self._study.ahead:
                return self._taken(name)
            self._rest.appendleft(name)  # its job was dropped meanwhile
        return self._taken(self._rest.popleft())

    def remove(self, name: str) -> None:
        for queue in (self._adopting, self._rest):
            if name in self._count and name in queue:
                queue.remove(name)
                self._taken(name)
                return
        raise ValueError(f"{name} is not in the queue")

    def __contains__(self, name: object) -> bool:
        return name in self._count

    def __iter__(self) -> Iterator[str]:
        yield from self._adopting
        yield from self._rest

    def __bool__(self) -> bool:
        return bool(self._count)

    def __len__(self) -> int:
        total = len(self._adopting) + len(self._rest)
        room = throttle_room(self._graph, self._study)
        if room is None:
            return total
        return len(self._adopting) + min(len(self._rest), room)
