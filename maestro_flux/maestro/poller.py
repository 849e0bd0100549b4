"""Polling: the Maestro state of every job id Maestro asks about, from one job-list
request (broker/connection.py), decided by model/states.py's ``decide``.

A placeholder id (submissions.py: a job whose answer is not read yet) is PENDING.
While the broker cannot be reached, every job keeps its state (NOTFOUND, polled
again), except the jobs of a canceled study, which end CANCELLED so that the study
can finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from maestro_flux.broker import bindings
from maestro_flux.broker.connection import Broker
from maestro_flux.maestro.study_state import StudyState
from maestro_flux.maestro.submissions import is_placeholder
from maestro_flux.model import jobids
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.retries import is_node_failure
from maestro_flux.model.states import JobStatus, PollFacts, decide


class Poller:
    """The states of a study's jobs, as Maestro's names of them."""

    def __init__(self, study: StudyState, broker: Callable[[], Broker],
                 node_failure_retries: int, logger: logging.Logger) -> None:
        self.study, self._broker = study, broker
        self.retries, self.logger = node_failure_retries, logger

    def states(self, joblist: list) -> dict[Any, str]:
        """job id (as Maestro holds it) -> the name of its Maestro State."""
        parsed, states = self.parse(joblist)
        broker = self._broker()
        try:
            statuses = broker.statuses(set(parsed.values()))
        except (MaestroFluxError, OSError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            return {**states, **self._unreachable(parsed, broker, reason)}
        for text, number in parsed.items():
            states[text] = self._state_of(text, statuses.get(number), broker, number)
        return states

    def parse(self, joblist: list) -> tuple[dict[Any, int], dict[Any, str]]:
        """(id -> its number, id -> state for the ids that are not Flux ids)."""
        parsed, states = {}, {}
        for jobid in joblist:
            if is_placeholder(jobid):
                states[jobid] = "PENDING"  # its answer is being looked for (submissions.py)
                continue
            try:
                parsed[jobid] = jobids.parse_jobid(jobid, fallback=bindings.parse_jobid)
            except (ValueError, MaestroFluxError):
                self.logger.error("maestro-flux: %r is not a Flux job id; step marked UNKNOWN",
                                  jobid)
                states[jobid] = "UNKNOWN"
        return parsed, states

    def _state_of(self, text: Any, status: JobStatus | None, broker: Broker,
                  number: int) -> str:
        study, jobid = self.study, jobids.f58_encode(number)
        facts = PollFacts(
            jobid=str(text), broker=broker.label,
            moved_from=study.moved_from(number, broker.uri) if status is None else None,
            awaiting=status is None and broker.awaiting_listing(number),
            grace_passed=(broker.listing_grace.grace if number in broker.listing_grace
                          else None),
            node_failure=self._node_failure(jobid, status),
            # Forgotten at the end of every job, so the broker keeps it for those in flight.
            asks=broker.asks_of(number) if status and status.state == "INACTIVE" else None)
        polled = decide(status, facts)
        if polled.notice is not None:
            study.notices.log_once(self.logger, logging.getLevelName(polled.notice.level),
                                   polled.notice.key, polled.notice.text)
        return polled.state

    def _node_failure(self, jobid: str, status: JobStatus | None) -> Any:
        """The node-failure decision for an ended job (counted once per job), else None;
        an ended job leaves the id -> step map."""
        if status is None or status.state != "INACTIVE":
            return None
        failures = self.study.node_failures
        if not is_node_failure(status):
            failures.ended(jobid)
            return None
        return failures.decide(jobid, status, self.retries)

    def _unreachable(self, parsed: dict, broker: Broker, reason: Any) -> dict[Any, str]:
        canceled = {text for text, number in parsed.items() if number in broker.cancel_requested}
        self.logger.warning("maestro-flux: cannot poll %s: %s; %d step(s) keep their state "
                            "and are polled again next cycle", broker.label, reason,
                            len(parsed) - len(canceled))
        if canceled:
            self.logger.warning("maestro-flux: %d canceled step(s) marked CANCELLED although "
                                "%s could not confirm it (%s); if that instance comes back, "
                                "cancel them there with flux cancel", len(canceled),
                                broker.label, ", ".join(sorted(map(str, canceled))))
        return {text: "CANCELLED" if text in canceled else "NOTFOUND" for text in parsed}
