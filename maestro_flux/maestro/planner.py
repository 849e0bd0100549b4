"""What a step becomes: its plan (options, resources, command), its scripts and its
jobspec.

The path of the data reads top to bottom: the batch block (validated), the
template's ``#flux:`` directives, the step's keys, then the resource model
(model/resources.py), then the script (model/script.py) and the jobspec
(broker/jobspec.py). A plan is made once when Maestro writes the step's script and
kept in the study's state for the submission that follows (so an edited template
counts from the next script on).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maestro_flux.broker import jobspec as jobspecs
from maestro_flux.broker.connection import Broker
from maestro_flux.broker.directives import template_directives
from maestro_flux.broker.uri import BrokerChoice
from maestro_flux.maestro import template_files
from maestro_flux.maestro.graph import file_name, step_name, step_run
from maestro_flux.maestro.portability import fit_to_broker
from maestro_flux.maestro.study_state import StudyState
from maestro_flux.model.batch_options import BatchOptions
from maestro_flux.model.environment import job_environment, rule_lines
from maestro_flux.model.errors import BatchBlockError, MaestroFluxError, StepError
from maestro_flux.model.precedence import StepChoice, choose, directive_options, effective_options
from maestro_flux.model.request import JobRequest, job_request, launcher_command
from maestro_flux.model.resources import describe, planned_resources, step_resources
from maestro_flux.model.script import interpreter, render_script
from maestro_flux.model.step_keys import step_options

#: The run-block key that hands a step's effective resources to get_parallelize_command
#: through Maestro's _substitute_parallel_command.
LAUNCH_RESOURCES = "maestro_flux_resources"
RESTART_INFIX = "restart."


@dataclass(frozen=True)
class StepPlan:
    """What a step becomes: its job request, substituted commands and template text."""

    request: JobRequest
    cmd: str
    restart: str
    asks: str  # what the step asks of Flux, in words
    template: tuple[str, str] | None = None  # (path, rendered text)
    restart_template: tuple[str, str] | None = None


def read_rule_file(path: str) -> list[str]:
    """The rules of a ``^FILE`` env rule (StepError naming the file)."""
    try:
        with open(os.path.expanduser(path)) as handle:
            return rule_lines(handle.read())
    except OSError as err:
        raise StepError(f"env-file {path}: {err.strerror or err}") from None


class StepPlanner:
    """Plans, scripts and jobspecs of one study's steps, for one adapter instance."""

    def __init__(self, options: BatchOptions, study: StudyState, choice: BrokerChoice,
                 substitute: Callable[..., str], broker: Callable[[], Broker],
                 problem: str | None = None) -> None:
        self.options, self.study, self.choice = options, study, choice
        self._substitute, self._broker, self.problem = substitute, broker, problem

    # -- the plan --------------------------------------------------------------
    def plan(self, step: Any, workspace: str, fresh: bool = False) -> StepPlan:
        """The step's plan: made anew when ``fresh`` (Maestro writes the script), else
        the one kept since."""
        key = (step_name(step), os.path.abspath(workspace))
        plan = None if fresh else self.study.plans.get(key)
        return plan or self.study.plans.put(key, self._new_plan(step, workspace))

    def _new_plan(self, step: Any, workspace: str) -> StepPlan:
        run, name = step_run(step), step_name(step)
        choice = choose(self.options, name)
        path = (self.study.context.template(choice.template, workspace, self.study.spec_root)
                if choice.template else None)
        draft = self._render(path, step, workspace, choice, run["cmd"])
        directives = (directive_options(template_directives(draft[1], path), path)
                      if draft else {})
        options = effective_options(directives, self.options, choice, run)
        fit = fit_to_broker(options, self._broker, self.options.portable)
        res = planned_resources(fit.options, run, choice.nested_default)
        # $(LAUNCHER) is built from these same effective resources (get_parallelize_command).
        launch = {**run, "nodes": res.nodes, "procs": res.tasks, LAUNCH_RESOURCES: res}
        cmd = self._substitute(run["cmd"], **launch)
        restart = self._substitute(run["restart"], **launch) if run.get("restart") else ""
        request = job_request(res, name, workspace, fit.options,
                              (fit.note,) if fit.note else ())
        return StepPlan(request, cmd, restart, describe(res),
                        self._render(path, step, workspace, choice, cmd),
                        self._render(path, step, workspace, choice, restart) if restart
                        else None)

    def _context(self, step: Any, workspace: str, choice: StepChoice, command: str) -> dict:
        run, name = step_run(step), step_name(step)
        return {
            "maestro_command": command, "step_name": name, "workspace": workspace,
            "params": self.study.context.step_parameters(workspace, name),
            "profile": choice.profile_name, "nodes": run.get("nodes") or None,
            "procs": run.get("procs") or None, "cores_per_task": run.get("cores per task") or None,
            "gpus": run.get("gpus") or None, "walltime": run.get("walltime") or None,
            "priority": run.get("priority") or None, "flux_uri": self.choice.uri,
        }

    def _render(self, path: str | None, step: Any, workspace: str, choice: StepChoice,
                command: str) -> tuple[str, str] | None:
        if path is None:
            return None
        return path, template_files.render(path, self._context(step, workspace, choice, command))

    def asks(self, step: Any, cwd: str) -> str | None:
        """What the step asks of Flux, in words (None if it cannot be planned)."""
        try:
            return self.plan(step, cwd).asks
        except (MaestroFluxError, ValueError):
            return None

    def job_name(self, step: Any, workspace: str) -> str:
        """The name the step's job has in Flux."""
        return self.plan(step, workspace).request.name

    # -- scripts ---------------------------------------------------------------
    def header(self, step: Any) -> str:
        """The ``#!`` line and ``#flux:`` directives of a step's script."""
        plan = self.plan(step, os.getcwd())
        return render_script(self.options.shell, plan.request, "", self.choice.describe()).rstrip()

    def scripts(self, step: Any, workspace: str) -> dict[str, str]:
        """The step's script texts by infix ("" and, with a restart command,
        "restart."); a step that cannot be planned gets a script that says why."""
        broker = self.choice.describe()
        try:
            if self.problem:
                raise BatchBlockError(self.problem)
            plan = self.plan(step, workspace, fresh=True)
            scripts = {"": render_script(self.options.shell, plan.request, plan.cmd, broker,
                                         template=plan.template)}
            if plan.restart:
                scripts[RESTART_INFIX] = render_script(self.options.shell, plan.request,
                                                       plan.restart, broker,
                                                       template=plan.restart_template)
        except (MaestroFluxError, ValueError) as err:
            problem = f"step '{step_name(step)}': {err}"
            scripts = {"": render_script(self.options.shell, None, step_run(step)["cmd"],
                                         broker, problem)}
        return scripts

    @staticmethod
    def script_paths(step: Any, workspace: str, infixes: Any, extension: str) -> dict[str, str]:
        return {infix: os.path.join(workspace, f"{file_name(step)}.{infix}{extension}")
                for infix in infixes}

    def launcher(self, procs: Any, nodes: Any, kwargs: dict) -> str:
        """``flux run`` for $(LAUNCHER): from the step's effective resources, which the
        plan hands over (or, called outside a plan, from the step keys alone)."""
        res = kwargs.get(LAUNCH_RESOURCES)
        if res is None:
            run = {**kwargs, "procs": procs, "nodes": nodes}
            # $(LAUNCHER) only exists inside an instance, so the model is the nested one.
            res = step_resources(step_options(run), run, nested=True)
        return launcher_command(res, self.options.launcher, int(procs) if procs else None,
                                int(nodes) if nodes else None)

    # -- the jobspec -------------------------------------------------------------
    def jobspec(self, step: Any, path: str, cwd: str,
                env: dict | None = None) -> tuple[Any, int, list[str]]:
        """The jobspec (built by the bindings), urgency and submit flags of a written
        script. The urgency is the step's; the adapter fits it to the submitter."""
        if self.problem:
            raise BatchBlockError(self.problem)
        request = self.plan(step, cwd).request
        environment = job_environment(request.get("env", ()), self.options.env_deny,
                                      self.study.environment, read_rules=read_rule_file)
        environment.update(env or {})
        with open(path) as handle:
            script_text = handle.read()
        shell = interpreter(script_text, self.options.shell)
        jobspec = jobspecs.build_jobspec(request, script_text, path, shell, environment)
        return jobspec, request.resources.urgency, list(request.get("flags", []))
