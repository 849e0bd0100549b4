"""Maestro's ScriptAdapter for ``batch: type: flux``: a thin class that wires
the batch options, the resource model, the script, the jobspec and the broker.

Maestro constructs this class two or three times per conductor cycle, so the
constructor only validates (cached) and never opens a connection; what lasts
longer than one instance belongs to the study's StudyState (study_state.py).
No method raises into the conductor: failures become SubmissionCode.ERROR, a
logged line and, for polling, a state.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from maestrowf.abstracts.enums import CancelCode, JobStatusCode, State, SubmissionCode
from maestrowf.abstracts.interfaces import SchedulerScriptAdapter

from maestro_flux.broker import bindings
from maestro_flux.broker import jobspec as jobspecs
from maestro_flux.broker.directives import template_directives
from maestro_flux.broker.uri import BrokerChoice, choose_broker
from maestro_flux.maestro.maestro_imports import import_maestro
from maestro_flux.maestro.portability import fit_to_broker
from maestro_flux.maestro.study_state import STUDIES, STUDY_KEY, StudyState
from maestro_flux.model import jobids, templates
from maestro_flux.model.batch_options import BatchOptions, parse_batch_block
from maestro_flux.model.environment import job_environment
from maestro_flux.model.errors import BatchBlockError, MaestroFluxError, StepError
from maestro_flux.model.guest import guest_flags
from maestro_flux.model.inventory import Inventory
from maestro_flux.model.precedence import StepChoice, choose, directive_options, effective_options
from maestro_flux.model.refusals import UNSATISFIABLE, refusal
from maestro_flux.model.request import JobRequest, job_request, launcher_command
from maestro_flux.model.resources import (
    StepResources,
    describe,
    step_options,
    step_resources,
    wants_nested,
)
from maestro_flux.model.retries import is_node_failure
from maestro_flux.model.script import interpreter, render_script
from maestro_flux.model.states import ACTIVE_STATE_MAP, RESULT_MAP
from maestro_flux.model.urgency import clamp

LOGGER = logging.getLogger(__name__)
CANCEL_REASON = "canceled by maestro cancel"
#: The run-block key that hands a step's effective resources to get_parallelize_command
#: through Maestro's _substitute_parallel_command.
LAUNCH_RESOURCES = "maestro_flux_resources"


def _records() -> tuple[type, type]:
    """Maestro's record classes, imported late: importing maestrowf.interfaces
    scans every adapter module, this one included, so a top-level import would
    be circular when maestro_flux.maestro.adapter is imported first."""
    records = import_maestro("maestrowf.interfaces.script")
    return records.SubmissionRecord, records.CancellationRecord


@dataclass(frozen=True)
class StepPlan:
    """What a step becomes: its job request, substituted commands and template text."""

    request: JobRequest
    cmd: str
    restart: str
    template: tuple[str, str] | None = None  # (path, rendered text)
    restart_template: tuple[str, str] | None = None


class FluxAdapter(SchedulerScriptAdapter):
    """Submits Maestro steps to a Flux broker as jobs or nested instances."""

    key = "flux"

    def __init__(self, **kwargs: Any) -> None:
        # Maestro would print a traceback and stop the conductor if this raised;
        # instead every step fails with the one-line message (nothing is submitted).
        self._problem: str | None = None
        self._study: StudyState = STUDIES.for_block(kwargs)
        notices = self._study.notices
        block = {key: value for key, value in kwargs.items() if key != STUDY_KEY}
        try:
            self._options: BatchOptions = parse_batch_block(block)
        except BatchBlockError as err:
            self._problem = str(err)
            self._options = BatchOptions()
            notices.log_once(LOGGER, logging.ERROR, f"block:{err}", "maestro-flux: %s; no "
                             "step will be submitted until the batch block is fixed", err)
        super().__init__(**block)
        self._broker_choice = choose_broker(self._options.flux_uri, notices=notices,
                                            uri_file=self._options.flux_uri_file)
        for warning in self._options.warnings:
            notices.log_once(LOGGER, logging.WARNING, warning, warning)
        notices.log_once(LOGGER, logging.INFO, f"uri:{self._broker_choice}",
                         "maestro-flux: submitting to %s", self._broker_choice.describe())

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

    # -- the step model ------------------------------------------------------
    def _context(self, step: Any, workspace: str, choice: StepChoice, command: str) -> dict:
        run, params = step.run, self._study.context.step_parameters(workspace, step.name)
        return {
            "maestro_command": command, "step_name": step.name, "workspace": workspace,
            "params": params, "profile": choice.profile_name,
            "nodes": run.get("nodes") or None, "procs": run.get("procs") or None,
            "cores_per_task": run.get("cores per task") or None,
            "gpus": run.get("gpus") or None, "walltime": run.get("walltime") or None,
            "priority": run.get("priority") or None, "flux_uri": self._broker_choice.uri,
        }

    def _render(self, path: str | None, step: Any, workspace: str, choice: StepChoice,
                command: str) -> tuple[str, str] | None:
        if path is None:
            return None
        return path, templates.render(path, self._context(step, workspace, choice, command))

    def _resources(self, options: dict, run: dict, choice: StepChoice) -> StepResources:
        nested = wants_nested(run, options, choice.nested_default)
        if not nested and (options.get("conf") or options.get("broker-opts")):
            raise StepError("conf and broker-opts configure a nested instance, but this step "
                            "runs as a plain job: set 'nested: true'")
        return step_resources(options, run, nested)

    def _plan(self, step: Any, workspace: str, fresh: bool = False) -> StepPlan:
        """The step's plan: made anew when Maestro writes the step's script (so an
        edited template counts from the next script on), and kept in the study's
        state for the submission that follows it."""
        key = (step.name, os.path.abspath(workspace))
        plan = None if fresh else self._study.plans.get(key)
        return plan or self._study.plans.put(key, self._new_plan(step, workspace))

    def _new_plan(self, step: Any, workspace: str) -> StepPlan:
        choice = choose(self._options, step.name)
        path = (self._study.context.template(choice.template, workspace, self._study.spec_root)
                if choice.template else None)
        draft = self._render(path, step, workspace, choice, step.run["cmd"])
        directives = (directive_options(template_directives(draft[1], path), path)
                      if draft else {})
        options = effective_options(directives, self._options, choice, step.run)
        fit = fit_to_broker(options, self.broker, self._options.portable)
        options = fit.options
        res = self._resources(options, step.run, choice)
        # $(LAUNCHER) is built from these same effective resources (get_parallelize_command).
        run = {**step.run, "nodes": res.nodes, "procs": res.tasks, LAUNCH_RESOURCES: res}
        cmd = self._substitute_parallel_command(step.run["cmd"], **run)
        restart = step.run.get("restart") or ""
        if restart:
            restart = self._substitute_parallel_command(restart, **run)
        request = job_request(res, step.name, workspace, options,
                              (fit.note,) if fit.note else ())
        return StepPlan(request, cmd, restart,
                        self._render(path, step, workspace, choice, cmd),
                        self._render(path, step, workspace, choice, restart) if restart
                        else None)

    def job_name(self, step: Any, workspace: str) -> str:
        """The name the step's job has in Flux."""
        return self._plan(step, workspace).request.name

    def get_header(self, step: Any) -> str:
        """The ``#!`` line and ``#flux:`` directives of a step's script."""
        plan = self._plan(step, os.getcwd())
        broker = self._broker_choice.describe()
        return render_script(self._options.shell, plan.request, "", broker).rstrip()

    def get_parallelize_command(self, procs: Any, nodes: Any = None, **kwargs: Any) -> str:
        """``flux run`` for $(LAUNCHER) (``procs``/``nodes``: the whole step, or a
        $(LAUNCHER)[Nn, Mp] sub-allocation), from the step's effective resources,
        which ``_new_plan`` hands over as the header and jobspec use them."""
        res = kwargs.get(LAUNCH_RESOURCES)
        if res is None:  # called outside a plan: the step keys are all there is
            run = {**kwargs, "procs": procs, "nodes": nodes}
            # $(LAUNCHER) only exists inside an instance, so the model is the nested one.
            res = step_resources(step_options(run), run, nested=True)
        return launcher_command(res, self._options.launcher, int(procs) if procs else None,
                                int(nodes) if nodes else None)

    # -- writing scripts -----------------------------------------------------
    def _scripts(self, ws_path: str, step: Any) -> dict[str, str]:
        broker = self._broker_choice.describe()
        try:
            if self._problem:
                raise BatchBlockError(self._problem)
            plan = self._plan(step, ws_path, fresh=True)
            scripts = {"": render_script(self._options.shell, plan.request, plan.cmd, broker,
                                         template=plan.template)}
            if plan.restart:
                scripts["restart."] = render_script(self._options.shell, plan.request, plan.restart,
                                                    broker, template=plan.restart_template)
        except (MaestroFluxError, ValueError) as err:
            problem = f"step '{step.name}': {err}"
            LOGGER.error("maestro-flux: %s", problem)
            scripts = {"": render_script(self._options.shell, None, step.run["cmd"], broker,
                                         problem)}
        return scripts

    def _write_script(self, ws_path: str, step: Any) -> tuple[bool, str, str | None]:
        scripts = self._scripts(ws_path, step)
        paths = {infix: os.path.join(ws_path, f"{step.name}.{infix}{self.extension}")
                 for infix in scripts}
        # A job sent ahead runs this script whenever Flux starts it: rewriting a shell
        # script under a running shell corrupts it, so it is written once.
        if step.name not in self._study.ahead:
            for infix, text in scripts.items():
                with open(paths[infix], "w") as handle:
                    handle.write(text)
        # Every step goes to Flux, even one with no nodes or procs.
        return True, paths[""], paths.get("restart.")

    # -- the broker ----------------------------------------------------------
    def submit(self, step: Any, path: str, cwd: str, job_map: Any = None,
               env: dict | None = None) -> Any:
        """Submit one step; never raises. Returns the job id in ASCII f58 form (during
        a pipelined cycle, a placeholder that the cycle replaces with it)."""
        try:
            jobid = self._submit(step, path, cwd, env)
        except MaestroFluxError as err:
            return self._refused(step, str(err))
        except OSError as err:
            return self._refused(step, refusal(err, self._asks(step, cwd),
                                               self._has(err)))
        except (ValueError, TypeError) as err:
            return self._refused(step, f"invalid job request: {err}")
        except Exception as err:  # the conductor must survive anything
            LOGGER.debug("submit of %s failed", step.name, exc_info=True)
            return self._refused(step, f"unexpected {type(err).__name__}: {err}")
        if self._study.cycle is None:  # else the cycle logs the id when it has it
            LOGGER.info("maestro-flux: submitted step '%s' as Flux job %s", step.name, jobid)
        return _records()[0](SubmissionCode.OK, 0, jobid)

    def _asks(self, step: Any, cwd: str) -> str | None:
        """What the step asks of Flux, in words (None if it cannot be planned)."""
        try:
            return describe(self._plan(step, cwd).request.resources)
        except (MaestroFluxError, ValueError):
            return None

    def _has(self, err: OSError) -> Inventory | None:
        """What the instance has, asked only when it refused a job for lack of it."""
        return self.broker().inventory() if err.errno in UNSATISFIABLE else None

    def _refused(self, step: Any, reason: str) -> Any:
        LOGGER.error("maestro-flux: step '%s' was not submitted: %s", step.name, reason)
        return _records()[0](SubmissionCode.ERROR, 1)

    def build_jobspec(self, step: Any, path: str, cwd: str,
                      env: dict | None = None) -> tuple[Any, int, list[str]]:
        """The jobspec (built by the bindings), urgency and submit flags of a written script.

        The urgency is the step's; ``_as_submitter`` fits it to the broker at submission.
        """
        request = self._plan(step, cwd).request
        environment = job_environment(request.get("env", ()), self._options.env_deny)
        environment.update(env or {})
        with open(path) as handle:
            script_text = handle.read()
        shell = interpreter(script_text, self._options.shell)
        jobspec = jobspecs.build_jobspec(request, script_text, path, shell, environment)
        return jobspec, request.resources.urgency, list(request.get("flags", []))

    def _submit(self, step: Any, path: str, cwd: str, env: dict | None) -> str:
        if self._problem:
            raise BatchBlockError(self._problem)
        adopted = self._study.ahead.pop(step.name, None)
        if adopted is not None:  # sent ahead (ahead.py), and still of use: it is the step's
            self._journal_event("adopted", step.name, adopted.jobid, cwd)
            LOGGER.info("maestro-flux: step '%s' is Flux job %s, sent ahead", step.name,
                        adopted.jobid)
            self._study.node_failures.known(adopted.jobid, step.name)
            return adopted.jobid
        # The jobspec is built first: a step with bad input never reaches the broker.
        jobspec, urgency, flags = self.build_jobspec(step, path, cwd, env)
        broker = self.broker()
        urgency, flags = self._as_submitter(broker, urgency, flags)
        token = self._stamp(jobspec, step.name, cwd, "maestro")
        cycle = self._study.cycle
        if cycle is not None:  # the pipeline records the id at the end of the cycle
            return cycle.add(step.name, broker.submit_async(jobspec, urgency, flags), broker,
                             self._asks(step, cwd), token)
        jobid = jobids.f58_encode(broker.submit(jobspec, urgency, flags, self._asks(step, cwd)))
        if token:
            self._study.journal.submitted(step.name, token, jobid)
        self._study.node_failures.known(jobid, step.name)
        return jobid

    def _stamp(self, jobspec: Any, step_name: str, cwd: str, kind: str,
               waits_on: tuple = ()) -> str | None:
        """Journal the submission about to happen and stamp the job with its token, so
        that ``maestro-flux resume`` finds the job whatever happens next (None: no
        study directory, so no journal)."""
        journal = self._study.journal_for(cwd)
        if journal is None:
            return None
        token = journal.intent(step_name, kind, waits_on)
        jobspecs.add_identity(jobspec, {"study": str(journal.root), "step": step_name,
                                        "token": token})
        return token

    def _journal_event(self, event: str, step_name: str, jobid: str, cwd: str) -> None:
        journal = self._study.journal_for(cwd)
        if journal is not None:
            journal.event(event, step_name, jobid)

    def submit_ahead(self, step: Any, path: str, cwd: str,
                     waits_on: tuple[tuple[str, str | None], ...]) -> tuple[Any, str | None]:
        """Send a step's job, waiting (afterok) on the parents' jobs in ``waits_on``,
        without waiting for its id; returns the future for ``broker().submit_get_id``
        and the journal token. Raises on bad input or a refused connection, as
        ``_submit`` does (the caller leaves the step to Maestro)."""
        if self._problem:
            raise BatchBlockError(self._problem)
        jobspec, urgency, flags = self.build_jobspec(step, path, cwd)
        jobspecs.add_afterok(jobspec, [job for _, job in waits_on if job is not None])
        broker = self.broker()
        urgency, flags = self._as_submitter(broker, urgency, flags)
        token = self._stamp(jobspec, step.name, cwd, "ahead", waits_on)
        return broker.submit_async(jobspec, urgency, flags), token

    def broker(self) -> Any:
        """The study's Broker for this adapter's URI (no connection is opened here)."""
        return self._study.broker(self._broker_choice.uri, self._options.connect_timeout)

    def _as_submitter(self, broker: Any, urgency: int, flags: list[str]) -> tuple[int, list[str]]:
        """Urgency and flags within what this submitter may ask of the broker."""
        guest = broker.is_guest()
        if guest:
            flags, dropped = guest_flags(flags)
            for flag in dropped:
                self._study.notices.log_once(LOGGER, logging.WARNING, f"guest-{flag}",
                                             "maestro-flux: the '%s' flag is only for the "
                                             "instance owner; ignored", flag)
        return clamp(urgency, guest), flags

    def check_jobs(self, joblist: list) -> tuple[JobStatusCode, dict]:
        """States of all ids from one job-list request; never JobStatusCode.ERROR, never
        raises: anything unexpected is logged and every id is NOTFOUND (polled again)."""
        if not joblist:
            return JobStatusCode.NOJOBS, {}
        try:
            return self._check_jobs(joblist)
        except Exception as err:  # the conductor must survive anything
            LOGGER.debug("check_jobs failed", exc_info=True)
            LOGGER.error("maestro-flux: cannot poll %d job(s): unexpected %s: %s; they keep "
                         "their state and are polled again next cycle", len(joblist),
                         type(err).__name__, err)
            return JobStatusCode.OK, dict.fromkeys(joblist, State.NOTFOUND)

    def _check_jobs(self, joblist: list) -> tuple[JobStatusCode, dict]:
        parsed, states = self._parse_ids(joblist)
        broker = self.broker()
        try:
            statuses = broker.statuses(set(parsed.values()))
        except (MaestroFluxError, OSError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            return JobStatusCode.OK, self._unreachable(parsed, states, broker, reason)
        for text, number in parsed.items():
            states[text] = self._state_of(text, statuses.get(number), broker, number)
        return JobStatusCode.OK, states

    def _unreachable(self, parsed: dict, states: dict, broker: Any, reason: Any) -> dict:
        """States while the broker cannot be reached: kept (NOTFOUND), except steps
        the user canceled, which end as CANCELLED so that the study can finish."""
        canceled = {text for text, number in parsed.items() if number in broker.cancel_requested}
        LOGGER.warning("maestro-flux: cannot poll %s: %s; %d step(s) keep their state "
                       "and are polled again next cycle", broker.label, reason,
                       len(parsed) - len(canceled))
        if canceled:
            LOGGER.warning("maestro-flux: %d canceled step(s) marked CANCELLED although %s "
                           "could not confirm it (%s); if that instance comes back, "
                           "cancel them there with flux cancel",
                           len(canceled), broker.label, ", ".join(sorted(map(str, canceled))))
        states.update({text: State.CANCELLED if text in canceled else State.NOTFOUND
                       for text in parsed})
        return states

    def _parse_ids(self, joblist: list) -> tuple[dict[Any, int], dict[Any, State]]:
        parsed, states = {}, {}
        for jobid in joblist:
            try:
                parsed[jobid] = jobids.parse_jobid(jobid, fallback=bindings.parse_jobid)
            except (ValueError, MaestroFluxError):
                LOGGER.error("maestro-flux: %r is not a Flux job id; step marked UNKNOWN", jobid)
                states[jobid] = State.UNKNOWN
        return parsed, states

    def _state_of(self, text: Any, status: Any, broker: Any, number: int) -> State:
        notices = self._study.notices
        left = self._study.moved_from(number, broker.uri) if status is None else None
        if left:
            # Maestro resubmits a HWFAILURE: the study continues on the new broker.
            notices.log_once(LOGGER, logging.WARNING, f"moved:{text}",
                             "maestro-flux: job %s was submitted to %s, which the study has "
                             "left for %s; step resubmitted there", text, left, broker.label)
            return State.HWFAILURE
        if status is None and broker.awaiting_listing(number):
            return State.PENDING  # submitted by us; job-list has not caught up yet
        if status is None:
            why = ("purged, or submitted to another broker" if number not in broker.listing_grace
                   else "job-list has not listed it within the grace period of "
                   f"{broker.listing_grace.grace:g}s after its submission")
            notices.log_once(LOGGER, logging.WARNING, f"unknown:{text}",
                             "maestro-flux: job %s is unknown to %s (%s); step marked UNKNOWN",
                             text, broker.label, why)
            return State.UNKNOWN
        if status.state == "INACTIVE":
            ended = self._ended(number, status)
            if ended is not None:
                return ended
        state = State[status.maestro_state]
        # Forgotten at the end of every job, so the broker keeps it for those in flight only.
        asks = broker.asks_of(number) if status.state == "INACTIVE" else None
        if state in (State.FAILED, State.TIMEDOUT, State.CANCELLED):
            notices.log_once(LOGGER, logging.WARNING, f"end:{text}",
                             "maestro-flux: job %s ended: %s", text, status.reason(asks))
        return state

    def _ended(self, number: int, status: Any) -> State | None:
        """HWFAILURE or FAILED for a job a node failure ended, within the step's bound of
        retries (model/retries.py); None for any other end."""
        failures, jobid = self._study.node_failures, jobids.f58_encode(number)
        if not is_node_failure(status):
            failures.ended(jobid)
            return None
        decision = failures.decide(jobid, status, self._options.node_failure_retries)
        self._study.notices.log_once(LOGGER, logging.WARNING, f"node:{jobid}",
                                     "maestro-flux: step '%s', Flux job %s: %s",
                                     decision.step or "?", jobid, decision.reason)
        return State[decision.state]

    def cancel_jobs(self, joblist: list) -> Any:
        """Cancel all ids in one pass; jobs that already ended count as canceled.
        Never raises: anything unexpected is logged and answered with an ERROR record."""
        CancellationRecord = _records()[1]
        if not joblist:
            return CancellationRecord(CancelCode.OK, 0)
        try:
            return self._cancel_jobs(joblist, CancellationRecord)
        except Exception as err:  # the conductor must survive anything
            LOGGER.debug("cancel_jobs failed", exc_info=True)
            LOGGER.error("maestro-flux: cannot cancel %d job(s): unexpected %s: %s",
                         len(joblist), type(err).__name__, err)
            return CancellationRecord(CancelCode.ERROR, 1)

    def _cancel_jobs(self, joblist: list, CancellationRecord: type) -> Any:
        parsed, bad = self._parse_ids(joblist)
        broker = self.broker()
        try:
            outcome = broker.cancel(set(parsed.values()), CANCEL_REASON)
        except (MaestroFluxError, OSError) as err:
            LOGGER.error("maestro-flux: cannot cancel on %s: %s", broker.label, err)
            return CancellationRecord(CancelCode.ERROR, 1)
        failed = set(bad)
        for text, number in parsed.items():
            error = outcome.get(number)
            if error is not None:  # None: canceled, or had already ended
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
        return State[ACTIVE_STATE_MAP.get(job_state) or RESULT_MAP.get(job_state, "UNKNOWN")]
