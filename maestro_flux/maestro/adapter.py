"""Maestro's ScriptAdapter for ``batch: type: flux``: Maestro's face, and nothing more.

Each of Maestro's hooks delegates: the step planner (planner.py) makes scripts and
jobspecs, the study's submissions (submissions.py) send jobs and own their ids, the
poller (poller.py) turns job-list answers into Maestro states, and the broker
connection (broker/connection.py) cancels.

Maestro constructs this class two or three times per conductor cycle, so the
constructor only validates (cached) and never opens a connection; what lasts
longer than one instance belongs to the study's StudyState (study_state.py).
No hook raises into the conductor: failures become SubmissionCode.ERROR, a
logged line and, for polling, a state.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from maestrowf.abstracts.enums import CancelCode, JobStatusCode, State, SubmissionCode
from maestrowf.abstracts.interfaces import SchedulerScriptAdapter

from maestro_flux.broker.connection import Broker
from maestro_flux.broker.uri import BrokerChoice, choose_broker
from maestro_flux.maestro.graph import step_name
from maestro_flux.maestro.maestro_imports import import_maestro
from maestro_flux.maestro.planner import RESTART_INFIX, StepPlanner
from maestro_flux.maestro.poller import Poller
from maestro_flux.maestro.study_state import STUDIES, STUDY_KEY, StudyState
from maestro_flux.model.batch_options import BatchOptions, parse_batch_block
from maestro_flux.model.errors import BatchBlockError, MaestroFluxError
from maestro_flux.model.guest import guest_flags
from maestro_flux.model.inventory import Inventory
from maestro_flux.model.refusals import UNSATISFIABLE, refusal
from maestro_flux.model.states import ACTIVE_STATE_MAP, RESULT_MAP
from maestro_flux.model.urgency import clamp

LOGGER = logging.getLogger(__name__)
CANCEL_REASON = "canceled by maestro cancel"


def _records() -> tuple[type, type]:
    """Maestro's record classes, imported late: importing maestrowf.interfaces
    scans every adapter module, this one included, so a top-level import would
    be circular when maestro_flux.maestro.adapter is imported first."""
    records = import_maestro("maestrowf.interfaces.script")
    return records.SubmissionRecord, records.CancellationRecord


class FluxAdapter(SchedulerScriptAdapter):
    """Submits Maestro steps to a Flux broker as jobs or nested instances."""

    key = "flux"

    def __init__(self, **kwargs: Any) -> None:
        # Maestro would print a traceback and stop the conductor if this raised;
        # instead every step fails with the one-line message (nothing is submitted).
        problem: str | None = None
        self._study: StudyState = STUDIES.for_block(kwargs)
        notices = self._study.notices
        block = {key: value for key, value in kwargs.items() if key != STUDY_KEY}
        try:
            self._options: BatchOptions = parse_batch_block(block)
        except BatchBlockError as err:
            problem, self._options = str(err), BatchOptions()
            notices.log_once(LOGGER, logging.ERROR, f"block:{err}", "maestro-flux: %s; no "
                             "step will be submitted until the batch block is fixed", err)
        super().__init__(**block)
        self._broker_choice = choose_broker(self._options.flux_uri, notices=notices,
                                            uri_file=self._options.flux_uri_file)
        for warning in self._options.warnings:
            notices.log_once(LOGGER, logging.WARNING, warning, warning)
        notices.log_once(LOGGER, logging.INFO, f"uri:{self._broker_choice}",
                         "maestro-flux: submitting to %s", self._broker_choice.describe())
        self.planner = StepPlanner(self._options, self._study, self._broker_choice,
                                   self._substitute_parallel_command, self.broker, problem)
        self.poller = Poller(self._study, self.broker, self._options.node_failure_retries,
                             LOGGER)

    @property
    def extension(self) -> str:
        return "flux.sh"

    @property
    def batch_options(self) -> BatchOptions:
        """The validated batch block."""
        return self._options

    @property
    def study(self) -> StudyState:
        """The state this adapter shares with every other one of its study."""
        return self._study

    @property
    def broker_choice(self) -> BrokerChoice:
        """The broker URI this adapter submits to, and why."""
        return self._broker_choice

    def broker(self) -> Broker:
        """The study's Broker for this adapter's URI (no connection is opened here)."""
        return self._study.broker(self._broker_choice.uri, self._options.connect_timeout)

    # -- scripts -----------------------------------------------------------------
    def get_header(self, step: Any) -> str:
        """The ``#!`` line and ``#flux:`` directives of a step's script."""
        return self.planner.header(step)

    def get_parallelize_command(self, procs: Any, nodes: Any = None, **kwargs: Any) -> str:
        """``flux run`` for $(LAUNCHER) (``procs``/``nodes``: the whole step, or a
        $(LAUNCHER)[Nn, Mp] sub-allocation)."""
        return self.planner.launcher(procs, nodes, kwargs)

    def _write_script(self, ws_path: str, step: Any) -> tuple[bool, str, str | None]:
        scripts = self.planner.scripts(step, ws_path)
        paths = self.planner.script_paths(step, ws_path, scripts, self.extension)
        # A job sent ahead runs its script whenever Flux starts it: rewriting a shell
        # script under a running shell corrupts it, so that one is written once (under
        # --usetmp Maestro asks for another copy in its temporary folder: written).
        sent_ahead = step_name(step) in self._study.ahead
        for infix, text in scripts.items():
            if not (sent_ahead and os.path.exists(paths[infix])):
                with open(paths[infix], "w") as handle:
                    handle.write(text)
        # Every step goes to Flux, even one with no nodes or procs.
        return True, paths[""], paths.get(RESTART_INFIX)

    # -- submitting ----------------------------------------------------------------
    def submit(self, step: Any, path: str, cwd: str, job_map: Any = None,
               env: dict | None = None) -> Any:
        """Submit one step; never raises. Returns the job id in ASCII f58 form (during
        a pipelined round, a placeholder the round's end replaces with it)."""
        try:
            jobid = self._submit(step, path, cwd, env)
        except MaestroFluxError as err:
            return self._refused(step, str(err))
        except OSError as err:
            return self._refused(step, refusal(err, self.planner.asks(step, cwd),
                                               self._has(err)))
        except (ValueError, TypeError) as err:
            return self._refused(step, f"invalid job request: {err}")
        except Exception as err:  # the conductor must survive anything
            LOGGER.debug("submit of %s failed", step_name(step), exc_info=True)
            return self._refused(step, f"unexpected {type(err).__name__}: {err}")
        return _records()[0](SubmissionCode.OK, 0, jobid)

    def _submit(self, step: Any, path: str, cwd: str, env: dict | None) -> str:
        name, submissions = step_name(step), self._study.submissions
        adopted = submissions.adopt(name)
        if adopted is not None:  # sent ahead (ahead.py), and still of use: it is the step's
            return adopted
        # The jobspec is built first: a step with bad input never reaches the broker.
        jobspec, urgency, flags = self.planner.jobspec(step, path, cwd, env)
        broker = self.broker()
        urgency, flags = self.as_submitter(broker, urgency, flags)
        pending = submissions.send(broker, name, jobspec, urgency, flags, cwd, kind="maestro",
                                   name=self.planner.job_name(step, cwd),
                                   asks=self.planner.asks(step, cwd))
        jobid = submissions.for_maestro(pending)
        if submissions.in_cycle is None:  # else the round's end logs it, with its id
            LOGGER.info("maestro-flux: submitted step '%s' as Flux job %s", name, jobid)
        return jobid

    def _has(self, err: OSError) -> Inventory | None:
        """What the instance has, asked only when it refused a job for lack of it."""
        return self.broker().inventory() if err.errno in UNSATISFIABLE else None

    def _refused(self, step: Any, reason: str) -> Any:
        LOGGER.error("maestro-flux: step '%s' was not submitted: %s", step_name(step), reason)
        return _records()[0](SubmissionCode.ERROR, 1)

    def as_submitter(self, broker: Broker, urgency: int,
                     flags: list[str]) -> tuple[int, list[str]]:
        """Urgency and flags within what this submitter may ask of the broker."""
        guest = broker.is_guest()
        if guest:
            flags, dropped = guest_flags(flags)
            for flag in dropped:
                self._study.notices.log_once(LOGGER, logging.WARNING, f"guest-{flag}",
                                             "maestro-flux: the '%s' flag is only for the "
                                             "instance owner; ignored", flag)
        return clamp(urgency, guest), flags

    # -- polling and cancelling --------------------------------------------------
    def check_jobs(self, joblist: list) -> tuple[JobStatusCode, dict]:
        """States of all ids from one job-list request; never JobStatusCode.ERROR, never
        raises: anything unexpected is logged and every id is NOTFOUND (polled again)."""
        if not joblist:
            return JobStatusCode.NOJOBS, {}
        try:
            states = self.poller.states(joblist)
        except Exception as err:  # the conductor must survive anything
            LOGGER.debug("check_jobs failed", exc_info=True)
            LOGGER.error("maestro-flux: cannot poll %d job(s): unexpected %s: %s; they keep "
                         "their state and are polled again next cycle", len(joblist),
                         type(err).__name__, err)
            return JobStatusCode.OK, dict.fromkeys(joblist, State.NOTFOUND)
        return JobStatusCode.OK, {jobid: State[name] for jobid, name in states.items()}

    def cancel_jobs(self, joblist: list) -> Any:
        """Cancel all ids in one pass; jobs that already ended count as canceled.
        Never raises: anything unexpected is logged and answered with an ERROR record."""
        CancellationRecord = _records()[1]
        if not joblist:
            return CancellationRecord(CancelCode.OK, 0)
        try:
            failed = self._cancel(joblist)
        except Exception as err:  # the conductor must survive anything
            LOGGER.debug("cancel_jobs failed", exc_info=True)
            LOGGER.error("maestro-flux: cannot cancel %d job(s): %s", len(joblist),
                         err if isinstance(err, MaestroFluxError | OSError)
                         else f"unexpected {type(err).__name__}: {err}")
            return CancellationRecord(CancelCode.ERROR, 1)
        record = CancellationRecord(CancelCode.ERROR if failed else CancelCode.OK,
                                    1 if failed else 0)
        for text in joblist:
            record.add_status(text, CancelCode.ERROR if text in failed else CancelCode.OK)
        return record

    def _cancel(self, joblist: list) -> set:
        """The ids that could not be canceled (each logged with the broker's reason)."""
        parsed, bad = self.poller.parse(joblist)
        broker = self.broker()
        outcome = broker.cancel(set(parsed.values()), CANCEL_REASON)
        failed = {text for text, state in bad.items() if state == "UNKNOWN"}
        for text, number in parsed.items():
            error = outcome.get(number)
            if error is not None:  # None: canceled, or had already ended
                LOGGER.warning("maestro-flux: cannot cancel job %s: %s", text,
                               error.strerror or error)
                failed.add(text)
        return failed

    def _state(self, job_state: str) -> State:
        """Maestro's per-state hook; the tables in states.py do the real mapping."""
        return State[ACTIVE_STATE_MAP.get(job_state) or RESULT_MAP.get(job_state, "UNKNOWN")]
