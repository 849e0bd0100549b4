"""The job request: one step's resource model plus everything else a Flux job
needs (name, paths, queue, bank, attributes). The ``#flux:`` header, the
jobspec and the $(LAUNCHER) command are all rendered from it, so they cannot
disagree.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro_flux.options import BatchOptions, ExtraArgs
from maestro_flux.resources import StepResources

#: Job shell mustache tag for the id in plain ASCII f58, whatever the locale.
ID_TAG = "{{id.f58plain}}"


@dataclass(frozen=True)
class JobRequest:
    """A complete, broker-independent description of one step's Flux job."""

    resources: StepResources
    name: str
    cwd: str
    output: str
    error: str
    queue: str | None = None
    bank: str | None = None
    extra: ExtraArgs = field(default_factory=ExtraArgs)


def job_request(resources: StepResources, step_name: str, workspace: str,
                options: BatchOptions) -> JobRequest:
    """Combine a step's resources with the batch options into a JobRequest."""
    safe = step_name.replace(" ", "_").replace("/", "_")
    return JobRequest(
        resources=resources,
        name=safe,
        cwd=workspace,
        # Relative paths resolve against the job's cwd, the step workspace.
        output=f"{safe}.{ID_TAG}.out",
        error=f"{safe}.{ID_TAG}.err",
        queue=options.queue,
        bank=options.bank,
        extra=options.allocation,
    )


def jsonish(value: Any) -> Any:
    """A value as the flux CLI reads KEY=VAL: JSON if it parses, else the string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _pairs(flag: str, mapping: Mapping[str, Any]) -> list[str]:
    return [f"{flag}={key}" if value is None else f"{flag}={key}={_text(value)}"
            for key, value in mapping.items()]


def batch_arguments(request: JobRequest) -> list[str]:
    """The ``flux batch`` options that ask for exactly this request."""
    res = request.resources
    args = []
    if res.nodes:
        args.append(f"--nodes={res.nodes}")
    args += [f"--nslots={res.slots}", f"--cores-per-slot={res.cores_per_slot}"]
    if res.gpus_per_slot:
        args.append(f"--gpus-per-slot={res.gpus_per_slot}")
    if res.exclusive:
        args.append("--exclusive")
    if res.duration:
        args.append(f"--time-limit={res.duration:g}s")
    if request.queue:
        args.append(f"--queue={request.queue}")
    if request.bank:
        args.append(f"--bank={request.bank}")
    args += [f"--urgency={res.urgency}", f"--job-name={request.name}",
             f"--output={request.output}", f"--error={request.error}"]
    args += _pairs("--setattr", request.extra.setattr)
    args += _pairs("--setopt", request.extra.setopt)
    args += _pairs("--conf", request.extra.conf)
    return args


def flux_header(request: JobRequest) -> list[str]:
    """``#flux:`` directive lines, one option per line, shell-quoted."""
    return [f"#flux: {shlex.quote(arg)}" for arg in batch_arguments(request)]


def launcher_command(res: StepResources, launcher: ExtraArgs, tasks: int | None = None,
                     nodes: int | None = None) -> str:
    """``flux run`` for $(LAUNCHER), with the same cores and GPUs per task as the model.

    Args:
        res: the step's resources.
        launcher: batch.launcher_args.
        tasks, nodes: a $(LAUNCHER)[Nn, Mp] sub-allocation; default the whole step.
    """
    tasks = tasks or res.tasks
    nodes = nodes if nodes is not None else res.nodes
    args = ["flux", "run"]
    if nodes:
        args.append(f"-N{nodes}")
    args += [f"-n{tasks}", f"-c{res.cores_per_task}"]
    if res.gpus_per_task:
        args.append(f"-g{res.gpus_per_task}")
    if res.launcher_exclusive and nodes:
        args.append("-x")
    args += _pairs("--setattr", launcher.setattr)
    args += _pairs("--setopt", launcher.setopt)
    return " ".join(shlex.quote(arg) for arg in args)
