"""Maestro's ScriptAdapter for ``batch: type: flux``: a thin class that wires
the batch options, the resource model, the script, the jobspec and the broker.

Maestro constructs this class two or three times per conductor cycle, so the
constructor only validates (cached) and never opens a connection. No method
raises into the conductor: failures become SubmissionCode.ERROR, a logged line
and, for polling, a state.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from maestrowf.abstracts.enums import CancelCode, JobStatusCode, State, SubmissionCode
from maestrowf.abstracts.interfaces import SchedulerScriptAdapter

from maestro_flux import flux_api, jobids, pipeline
from maestro_flux.broker import broker_for
from maestro_flux.environment import job_environment
from maestro_flux.errors import MaestroFluxError, StepError
from maestro_flux.logs import log_once
from maestro_flux.options import BatchOptions, parse_batch_block
from maestro_flux.request import JobRequest, job_request, launcher_command
from maestro_flux.resources import StepResources, step_resources
from maestro_flux.script import render_script
from maestro_flux.states import ACTIVE_STATE_MAP, RESULT_MAP
from maestro_flux.uri import choose_broker

LOGGER = logging.getLogger(__name__)
CANCEL_REASON = "canceled by maestro cancel"


def _records() -> tuple[type, type]:
    """Maestro's record classes, imported late: importing maestrowf.interfaces
    scans every adapter module, this one included, so a top-level import would
    be circular when maestro_flux.adapter is imported first."""
    from maestrowf.interfaces.script import CancellationRecord, SubmissionRecord

    return SubmissionRecord, CancellationRecord


@dataclass(frozen=True)
class StepPlan:
    """What a step becomes: its job request and its substituted commands."""

    request: JobRequest
    cmd: str
    restart: str


class FluxAdapter(SchedulerScriptAdapter):
    """Submits Maestro steps to a Flux broker as jobs or nested instances."""

    key = "flux"

    def __init__(self, **kwargs: Any) -> None:
        self._options: BatchOptions = parse_batch_block(kwargs)
        super().__init__(**kwargs)
        self._broker_choice = choose_broker(self._options.flux_uri)
        pipeline.install()  # once per process; lets a cycle send its steps together
        for warning in self._options.warnings:
            log_once(LOGGER, logging.WARNING, warning, warning)
        log_once(LOGGER, logging.INFO, f"uri:{self._broker_choice}",
                 "maestro-flux: submitting to %s", self._broker_choice.describe())

    @property
    def extension(self) -> str:
        return "flux.sh"

    # -- the resource model ------------------------------------------------
    def _resources(self, run: dict, guest: bool = False) -> StepResources:
        return step_resources(run, self._options.nested, guest=guest)

    def _plan(self, step: Any, workspace: str, guest: bool = False) -> StepPlan:
        res = self._resources(step.run, guest)
        if not res.nested and self._options.allocation.conf:
            raise StepError("allocation_args.conf configures a nested instance, "
                            "but this step runs as a plain job: set 'nested: true'")
        run = {**step.run, "nodes": res.nodes, "procs": res.tasks}
        cmd = self._substitute_parallel_command(step.run["cmd"], **run)
        restart = step.run.get("restart") or ""
        if restart:
            restart = self._substitute_parallel_command(restart, **run)
        request = job_request(res, step.name, workspace, self._options)
        return StepPlan(request, cmd, restart)

    def get_header(self, step: Any) -> str:
        """The ``#!`` line and ``#flux:`` directives of a step's script."""
        plan = self._plan(step, os.getcwd())
        return render_script(self._exec, plan.request, "", self._broker_choice.describe()).rstrip()

    def get_parallelize_command(self, procs: Any, nodes: Any = None, **kwargs: Any) -> str:
        """``flux run`` for $(LAUNCHER), from the same resource model as the header."""
        run = {**kwargs, "procs": procs, "nodes": nodes}
        res = self._resources(run)
        return launcher_command(res, self._options.launcher)

    # -- writing scripts -----------------------------------------------------
    def _write_script(self, ws_path: str, step: Any) -> tuple[bool, str, str | None]:
        broker = self._broker_choice.describe()
        try:
            plan = self._plan(step, ws_path)
            scripts = {"": render_script(self._exec, plan.request, plan.cmd, broker)}
            if plan.restart:
                scripts["restart."] = render_script(self._exec, plan.request, plan.restart, broker)
        except (StepError, ValueError) as err:
            problem = f"step '{step.name}': {err}"
            LOGGER.error("maestro-flux: %s", problem)
            scripts = {"": render_script(self._exec, None, step.run["cmd"], broker, problem)}
        paths = {}
        for infix, text in scripts.items():
            paths[infix] = os.path.join(ws_path, f"{step.name}.{infix}{self.extension}")
            with open(paths[infix], "w") as handle:
                handle.write(text)
        # Every step goes to Flux, even one with no nodes or procs.
        return True, paths[""], paths.get("restart.")

    # -- the broker ----------------------------------------------------------
    def submit(self, step: Any, path: str, cwd: str, job_map: Any = None,
               env: dict | None = None) -> Any:
        """Submit one step; never raises. Returns the job id in ASCII f58 form."""
        try:
            jobid = self._submit(step, path, cwd, env)
        except MaestroFluxError as err:
            return self._refused(step, str(err))
        except OSError as err:
            return self._refused(step, f"Flux refused the job: {err.strerror or err}")
        except (ValueError, TypeError) as err:
            return self._refused(step, f"invalid job request: {err}")
        except Exception as err:  # the conductor must survive anything
            LOGGER.debug("submit of %s failed", step.name, exc_info=True)
            return self._refused(step, f"unexpected {type(err).__name__}: {err}")
        LOGGER.info("Submitted step '%s' as Flux job %s", step.name, jobid)
        return _records()[0](SubmissionCode.OK, 0, jobid)

    def _refused(self, step: Any, reason: str) -> Any:
        LOGGER.error("maestro-flux: step '%s' was not submitted: %s", step.name, reason)
        return _records()[0](SubmissionCode.ERROR, 1)

    def build_jobspec(self, step: Any, path: str, cwd: str, env: dict | None = None,
                      guest: bool = False) -> tuple[Any, int]:
        """The jobspec (built by the bindings) and urgency for a written step script."""
        request = self._plan(step, cwd, guest=guest).request
        environment = job_environment(self._options.env_rules, self._options.env_deny)
        environment.update(env or {})
        with open(path) as handle:
            script_text = handle.read()
        jobspec = flux_api.build_jobspec(request, script_text, path, self._exec, environment)
        return jobspec, request.resources.urgency

    def _submit(self, step: Any, path: str, cwd: str, env: dict | None) -> str:
        broker = broker_for(self._broker_choice.uri)
        guest = broker.is_guest()
        if guest and step.run.get("waitable"):
            log_once(LOGGER, logging.WARNING, "guest-waitable",
                     "maestro-flux: 'waitable' is only for the instance owner; ignored")
        jobspec, urgency = self.build_jobspec(step, path, cwd, env, guest)
        return jobids.f58_encode(broker.submit(jobspec, urgency))

    # -- a conductor cycle's steps together (see pipeline.py) ------------------
    def send(self, step: Any, path: str, cwd: str) -> Any:
        """Send a written step's job without waiting for its id; None if it could not
        be sent (the caller then uses ``submit``, which says why)."""
        try:
            broker = broker_for(self._broker_choice.uri)
            jobspec, urgency = self.build_jobspec(step, path, cwd, None, broker.is_guest())
            return broker.submit_nowait(jobspec, urgency)
        except Exception:  # the conductor must survive anything
            LOGGER.debug("sending %s failed; it will be submitted alone", step.name,
                         exc_info=True)
            return None

    def receive(self, step: Any, sent: Any) -> str | None:
        """The ASCII f58 id of a sent step's job; None if the broker refused it."""
        try:
            jobid = jobids.f58_encode(flux_api.submitted_id(sent))
        except Exception:  # refused or connection lost: submitted alone, which says why
            LOGGER.debug("step %s was not accepted; it will be submitted alone", step.name,
                         exc_info=True)
            return None
        LOGGER.info("Submitted step '%s' as Flux job %s", step.name, jobid)
        return jobid

    def check_jobs(self, joblist: list) -> tuple[JobStatusCode, dict]:
        """States of all ids from one job-list request; never JobStatusCode.ERROR."""
        if not joblist:
            return JobStatusCode.NOJOBS, {}
        parsed, states = self._parse_ids(joblist)
        broker = broker_for(self._broker_choice.uri)
        try:
            statuses = broker.statuses(set(parsed.values()))
        except (MaestroFluxError, OSError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            LOGGER.warning("maestro-flux: cannot poll %s: %s; %d step(s) keep their state "
                           "and are polled again next cycle", broker.label, reason, len(parsed))
            states.update({jobid: State.NOTFOUND for jobid in parsed})
            return JobStatusCode.OK, states
        for text, number in parsed.items():
            states[text] = self._state_of(text, statuses.get(number), broker.label)
        return JobStatusCode.OK, states

    def _parse_ids(self, joblist: list) -> tuple[dict[Any, int], dict[Any, State]]:
        parsed, states = {}, {}
        for jobid in joblist:
            try:
                parsed[jobid] = jobids.parse_jobid(jobid, fallback=flux_api.parse_jobid)
            except (ValueError, MaestroFluxError):
                LOGGER.error("maestro-flux: %r is not a Flux job id; step marked UNKNOWN", jobid)
                states[jobid] = State.UNKNOWN
        return parsed, states

    def _state_of(self, text: Any, status: Any, label: str) -> State:
        if status is None:
            log_once(LOGGER, logging.WARNING, f"unknown:{text}",
                     "maestro-flux: job %s is unknown to %s (purged, or submitted to another "
                     "broker); step marked UNKNOWN", text, label)
            return State.UNKNOWN
        state = status.maestro_state
        if state in (State.FAILED, State.TIMEDOUT, State.CANCELLED):
            log_once(LOGGER, logging.WARNING, f"end:{text}", "maestro-flux: job %s ended: %s",
                     text, status.reason())
        return state

    def cancel_jobs(self, joblist: list) -> Any:
        """Cancel all ids in one pass; jobs that already ended count as canceled."""
        CancellationRecord = _records()[1]
        if not joblist:
            return CancellationRecord(CancelCode.OK, 0)
        parsed, bad = self._parse_ids(joblist)
        broker = broker_for(self._broker_choice.uri)
        try:
            outcome = broker.cancel(set(parsed.values()), CANCEL_REASON)
        except (MaestroFluxError, OSError) as err:
            LOGGER.error("maestro-flux: cannot cancel on %s: %s", broker.label, err)
            return CancellationRecord(CancelCode.ERROR, 1)
        failed = set(bad)
        for text, number in parsed.items():
            error = outcome.get(number)
            if error is not None and "inactive" not in str(error):
                LOGGER.warning("maestro-flux: cannot cancel job %s: %s", text,
                               error.strerror or error)
                failed.add(text)
        record = CancellationRecord(CancelCode.ERROR if failed else CancelCode.OK,
                                    1 if failed else 0)
        for text in joblist:
            record.add_status(text, CancelCode.ERROR if text in failed else CancelCode.OK)
        return record

    def _state(self, job_state: str) -> State:
        """Maestro's per-state hook; the tables in states.py do the real mapping."""
        return ACTIVE_STATE_MAP.get(job_state) or RESULT_MAP.get(job_state, State.UNKNOWN)
