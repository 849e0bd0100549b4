"""The job request: one step's resource model plus every other flux batch
option it was given (name, paths, queue, bank, attributes, ...). The
``#flux:`` header, the jobspec and the $(LAUNCHER) command are all rendered
from it, so they cannot disagree.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro_flux.model import option_table as flux_options
from maestro_flux.model.batch_options import ExtraArgs
from maestro_flux.model.errors import StepError
from maestro_flux.model.resources import StepResources

#: Job shell mustache tag for the id in plain ASCII f58, whatever the locale.
ID_TAG = "{{id.f58plain}}"
#: Options the resource model owns; every other option passes through as given.
RESOURCE_OPTIONS = ("nodes", "nslots", "cores-per-slot", "gpus-per-slot", "exclusive",
                    "time-limit", "urgency")


@dataclass(frozen=True)
class JobRequest:
    """A complete, broker-independent description of one step's Flux job."""

    resources: StepResources
    name: str
    cwd: str
    output: str
    error: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: What was decided against the broker (a dropped queue), shown in the script.
    notes: tuple[str, ...] = ()

    def get(self, option: str, default: Any = None) -> Any:
        """A pass-through flux batch option (queue, setattr, env, ...)."""
        return self.options.get(option, default)


def default_job_name(step_name: str) -> str:
    """A step's job name in Flux when no ``job-name`` option sets another."""
    return step_name.replace(" ", "_").replace("/", "_")


def job_request(resources: StepResources, step_name: str, workspace: str,
                options: Mapping[str, Any], notes: tuple[str, ...] = ()) -> JobRequest:
    """Combine a step's resources with its other effective flux options."""
    safe = default_job_name(step_name)
    file_safe = re.sub(r"[^\w.+-]", "_", step_name)  # output names stay plain file names
    rest = {k: v for k, v in options.items()
            if k not in RESOURCE_OPTIONS and k not in ("job-name", "output", "error")}
    return JobRequest(
        resources=resources,
        name=options.get("job-name") or safe,
        cwd=workspace,
        # Relative paths resolve against the job's cwd, the step workspace.
        output=options.get("output") or f"{file_safe}.{ID_TAG}.out",
        error=options.get("error") or f"{file_safe}.{ID_TAG}.err",
        options=rest,
        notes=notes,
    )


def _resource_options(res: StepResources) -> dict[str, Any]:
    """The resource model as flux batch options (zero counts and durations left out)."""
    found = {"nodes": res.nodes, "nslots": res.slots, "cores-per-slot": res.cores_per_slot,
             "gpus-per-slot": res.gpus_per_slot, "exclusive": res.exclusive,
             "time-limit": f"{res.duration:g}s" if res.duration else None,
             "urgency": res.urgency}
    return {name: value for name, value in found.items()
            if value or name in ("nslots", "urgency")}


def batch_arguments(request: JobRequest) -> list[str]:
    """The ``flux batch`` options that ask for exactly this request."""
    named = {"job-name": request.name, "output": request.output, "error": request.error}
    return flux_options.to_argv({**request.options, **_resource_options(request.resources),
                                 **named})


_THREE_QUOTES = re.compile(r"[\"']{3}")


def _directive(arg: str) -> str:
    """One argument as RFC 36 reads it back: shell quoting, or flux's triple quotes
    where shell quoting would itself look like a triple quote to flux's parser."""
    if "\n" in arg or '"""' in arg:
        raise StepError(f"{arg.split('=', 1)[0]}: a value with a newline or \"\"\" cannot be "
                        "written as a #flux: directive")
    quoted = shlex.quote(arg)
    return f'"""{arg}"""' if _THREE_QUOTES.search(quoted) else quoted


def flux_header(request: JobRequest) -> list[str]:
    """``#flux:`` directive lines, one option per line, quoted so flux reads them back."""
    return [f"#flux: {_directive(arg)}" for arg in batch_arguments(request)]


def launcher_command(res: StepResources, launcher: ExtraArgs, tasks: int | None = None,
                     nodes: int | None = None) -> str:
    """``flux run`` for $(LAUNCHER), with the same cores and GPUs per task as the model.

    Args:
        res: the step's effective resources (every precedence layer merged).
        launcher: batch.launcher_args.
        tasks, nodes: a $(LAUNCHER)[Nn, Mp] sub-allocation; without ``tasks``, the
            whole step. A sub-allocation without a node count lets Flux place its tasks.
    """
    if not tasks:
        tasks, nodes = res.tasks, res.nodes
    args = ["flux", "run"]
    if nodes:
        args.append(f"-N{nodes}")
    args += [f"-n{tasks}", f"-c{res.cores_per_task}"]
    if res.gpus_per_task:
        args.append(f"-g{res.gpus_per_task}")
    if (res.launcher_exclusive or launcher.exclusive) and nodes:
        args.append("-x")
    args += flux_options.to_argv({"setattr": dict(launcher.setattr),
                                  "setopt": dict(launcher.setopt)})
    return " ".join(shlex.quote(arg) for arg in args)
