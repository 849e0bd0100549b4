"""Steps sent to Flux ahead of Maestro, with Flux holding their dependencies.

After each of Maestro's rounds (pipeline.py), :func:`send` submits every step
whose parents have all finished or have a job in Flux, its job waiting on theirs
(``afterok``), level after level, so that a whole chain or funnel is in Flux after
the first cycle (model/ahead.py decides which steps and on which jobs). The job
is kept in the study's state (``StudyState.ahead``); when Maestro submits the step,
``FluxAdapter.submit`` hands Maestro that job's id, so Maestro's records, restarts
and states are what they would be without it.

Before each round, :func:`prune` drops the jobs that are no longer of use (Flux
ended them with a ``dependency`` exception because a parent failed, or a parent
was restarted so they wait on the wrong attempt, or Maestro ended the step), and
cancels those still in Flux. :func:`cancel_all` cancels every one left, when the
study is canceled.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from maestro_flux.maestro.study_state import StudyState
from maestro_flux.model import jobids
from maestro_flux.model.ahead import AheadJob, Send, StepView, Verdict, next_wave, verdict
from maestro_flux.model.ahead import throttle_room as room_for

LOGGER = logging.getLogger(__name__)
SOURCE = "_source"  # Maestro's root node (executiongraph.SOURCE)
CANCEL_REASON = "sent ahead by maestro-flux; no longer needed"


def snapshot(graph: Any) -> dict[str, StepView]:
    """Every step of Maestro's graph, in its order, as model/ahead.py reads it."""
    parents: dict[str, list[str]] = {name: [] for name in graph.values if name != SOURCE}
    for parent, children in graph.adjacency_table.items():
        if parent != SOURCE:
            for child in children:
                parents[child].append(parent)
    return {name: StepView(name, tuple(parents[name]), record.status.name,
                           record.jobid[-1] if record.jobid else None,
                           name in graph.in_progress)
            for name, record in graph.values.items() if name != SOURCE}


def throttle_room(graph: Any, study: StudyState) -> int | None:
    """How many more jobs the study may put in Flux under Maestro's throttle."""
    return room_for(graph._submission_throttle, len(graph.in_progress), len(study.ahead))


def prune(graph: Any, study: StudyState, broker: Any) -> None:
    """Forget the jobs sent ahead that Maestro must not adopt; cancel those in Flux."""
    if not study.ahead:
        return
    steps = snapshot(graph)
    numbers = {name: jobids.parse_jobid(job.jobid) for name, job in study.ahead.items()}
    statuses = broker.statuses(set(numbers.values()))
    doomed = []
    for name, job in list(study.ahead.items()):
        status = statuses.get(numbers[name])
        by_dependency = status is not None and status.exception_type == "dependency"
        outcome = verdict(steps[name], job, steps, study.ahead, by_dependency)
        if outcome is not Verdict.KEEP:
            del study.ahead[name]
            if study.journal:
                study.journal.event("dropped", name, job.jobid)
            LOGGER.info("maestro-flux: job %s of step '%s' is no longer of use (%s)",
                        job.jobid, name, status.reason() if by_dependency else
                        "its step or a parent it waits on has moved on")
        if outcome is Verdict.CANCEL and (status is None or status.state != "INACTIVE"):
            doomed.append(numbers[name])
    if doomed:
        broker.cancel(doomed, CANCEL_REASON)


def cancel_all(study: StudyState, broker: Any) -> None:
    """Cancel every job sent ahead (the study is canceled); none is left in Flux."""
    if study.ahead:
        numbers = [jobids.parse_jobid(job.jobid) for job in study.ahead.values()]
        study.ahead.clear()
        broker.cancel(numbers, CANCEL_REASON)
        LOGGER.info("maestro-flux: canceled %d job(s) sent ahead", len(numbers))


def send(graph: Any, study: StudyState, adapter: Any) -> int:
    """Send every step that can go ahead now, level after level; returns how many.

    A step that cannot be sent (bad input, a refusal: a parent's job already
    failed, say) is left to Maestro, which submits or fails it as it would anyway.
    """
    sent, left = 0, set(graph.ready_steps)
    while True:
        wave = next_wave(snapshot(graph), study.ahead, left, throttle_room(graph, study))
        if not wave:
            break
        for item, answer in _send_wave(graph, adapter, wave, study):
            if isinstance(answer, str):
                study.ahead[item.name] = AheadJob(answer, item.waits_on)
                sent += 1
            else:
                left.add(item.name)
                LOGGER.info("maestro-flux: step '%s' not sent ahead (%s); it is submitted "
                            "when Maestro finds it ready", item.name, answer)
    if sent:
        LOGGER.info("maestro-flux: %d step(s) sent ahead, waiting in Flux on their parents",
                    sent)
    return sent


def _send_wave(graph: Any, adapter: Any, wave: list[Send],
               study: StudyState) -> list[tuple[Send, Any]]:
    """Send a wave's jobs together, then read their ids (or errors), each id into the
    journal as soon as it is read."""
    broker = adapter.broker()
    futures = []
    for item in wave:
        try:
            futures.append((item, _send_one(graph, adapter, item)))
        except Exception as err:  # bad input, unreachable broker: Maestro's turn
            futures.append((item, err))
    answers = []
    for item, sent in futures:
        if isinstance(sent, Exception):
            answers.append((item, sent))
            continue
        future, token = sent
        try:
            jobid = jobids.f58_encode(broker.submit_get_id(future))
        except Exception as err:  # refused: a parent's job already failed, say
            answers.append((item, err))
            continue
        if token and study.journal:
            study.journal.submitted(item.name, token, jobid)
        answers.append((item, jobid))
    return answers


def _send_one(graph: Any, adapter: Any, item: Send) -> Any:
    record = graph.values[item.name]
    record.setup_workspace()
    record.generate_script(adapter, graph._tmp_dir)  # as Maestro writes it
    return adapter.submit_ahead(record.step, record.script, record.workspace.value,
                                item.waits_on)


class AheadFirst(deque):
    """Maestro's queue of ready steps for one round, under a throttle.

    Maestro pops ``min(throttle - in_progress, len(queue))`` steps. Steps with a
    job sent ahead come out first (adopting a job puts nothing new in Flux), and the
    length counts the others only up to what the throttle leaves once the jobs sent
    ahead are counted, so the study never has more jobs in Flux than ``-t`` allows.
    Replaced by a plain deque before Maestro pickles the graph.
    """

    def __init__(self, items: Any, study: StudyState, graph: Any) -> None:
        super().__init__(items)
        self._study, self._graph = study, graph

    def popleft(self) -> Any:
        for name in self:
            if name in self._study.ahead:
                self.remove(name)
                return name
        return super().popleft()

    def __len__(self) -> int:
        total = super().__len__()
        room = throttle_room(self._graph, self._study)
        if room is None:
            return total
        adopting = sum(1 for name in self if name in self._study.ahead)
        return adopting + min(total - adopting, room)
