"""Jobspecs built with the bindings' own factories, from a JobRequest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from maestro_flux.broker import apply_options
from maestro_flux.broker.bindings import bindings, submodule
from maestro_flux.model import option_table as flux_options
from maestro_flux.model.records import IDENTITY_PATH, Identity
from maestro_flux.model.request import JobRequest


def split_commas(values: Iterable[str] | None) -> list[str]:
    # flux batch splits --broker-opts and --flags values on commas.
    return [part for value in values or () for part in str(value).split(",") if part]


def _nested_dict(dotted: dict[str, Any]) -> dict[str, Any] | None:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as ``flux batch --conf=a.b=1`` builds it."""
    tree: dict[str, Any] = {}
    for key, value in dotted.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree or None


def _begin_time(text: str) -> str:
    util = submodule("util")
    return f"begin-time:{util.parse_datetime(text).timestamp()}"


def _in_workspace(arg: str, cwd: str) -> str:
    """An --add-file argument with a relative path made relative to the step workspace,
    where ``flux batch`` of the written script would look for it."""
    name, sep, data = arg.partition("=")
    path = data if sep else name
    if "\n" in path or "\\n" in path or os.path.isabs(path):
        return arg
    located = os.path.join(cwd, path)
    return f"{name}={located}" if sep else f"{os.path.basename(path)}={located}"


#: How a pass-through option's value becomes its from_batch keyword's value
#: (the rest go as they are); options that share a keyword accumulate in table order.
CONVERT: dict[str, Callable[[Any, JobRequest], Any]] = {
    "begin-time": lambda value, _: [_begin_time(value)],
    "dependency": lambda value, _: list(value),
    "requires": lambda value, _: list(value),
    "setattr": lambda value, _: dict(value) or None,
    "setopt": lambda value, _: dict(value) or None,
    "conf": lambda value, _: _nested_dict(dict(value)),
    "broker-opts": lambda value, _: split_commas(value) or None,
    "rlimit": lambda value, _: list(value),
    "add-file": lambda value, request: [_in_workspace(a, request.cwd) for a in value],
}


def batch_keywords(request: JobRequest) -> dict[str, Any]:
    """``JobspecV1.from_batch`` keywords for the request, one per option of the table
    that reaches the jobspec (``FluxOption.jobspec``)."""
    res = request.resources
    keywords: dict[str, Any] = {
        # The resource model decides these; job name and paths are the request's own.
        "nslots": res.slots, "nodes": res.nodes, "cores_per_slot": res.cores_per_slot,
        "gpus_per_slot": res.gpus_per_slot or None, "exclusive": res.exclusive,
        "time_limit": res.duration or None, "name": request.name, "cwd": request.cwd,
        "output": request.output, "error": request.error,
        # The environment is set afterwards from maestro-flux's deny-list policy;
        # default rlimits propagate, as with flux batch.
        "env": ["-*"], "rlimit": [],
    }
    for name, option in flux_options.OPTIONS.items():
        if option.jobspec is None or name not in request.options:
            continue
        value = CONVERT.get(name, lambda v, _: v)(request.options[name], request)
        if isinstance(value, list) and isinstance(keywords.get(option.jobspec), list):
            value = [*keywords[option.jobspec], *value]
        keywords[option.jobspec] = value
    return keywords


def build_jobspec(request: JobRequest, script_text: str, script_path: str,
                  shell: list[str], environment: dict[str, str],
                  older: bool | None = None) -> Any:
    """A JobspecV1 for the request, built with the bindings' own factories.

    A nested step is ``JobspecV1.from_batch`` (``flux batch``'s own code path); a
    direct step is ``from_command`` running the written script with ``shell`` (its
    ``#!`` interpreter and arguments), with the same keywords applied. Bindings
    older than 0.84 get the same jobspec through their older calls
    (apply_options.py); ``older`` forces that path (True) or the newer one (False).
    """
    keywords = batch_keywords(request)
    JobspecV1 = bindings().job.JobspecV1
    if request.resources.nested:
        jobspec = apply_options.from_batch(JobspecV1, script_text, keywords, older)
    else:
        res = request.resources
        resources = {"num_tasks": 1, "cores_per_task": res.cores_per_slot,
                     "gpus_per_task": res.gpus_per_slot or None, "num_nodes": res.nodes,
                     "exclusive": res.exclusive}
        rest = {k: v for k, v in keywords.items() if k not in apply_options.FACTORY}
        jobspec = apply_options.from_command(JobspecV1, [*shell, script_path], resources,
                                             rest, older)
    jobspec.environment = environment
    return jobspec


def add_afterok(jobspec: Any, jobids: Iterable[str]) -> None:
    """Make the job wait for each of ``jobids`` to complete (``--dependency=afterok:ID``),
    after any dependency the step asked for itself."""
    system = jobspec.jobspec.get("attributes", {}).get("system", {})
    dependencies = list(system.get("dependencies") or [])
    dependencies += [{"scheme": "afterok", "value": str(jobid)} for jobid in jobids]
    if dependencies:
        jobspec.setattr("system.dependencies", dependencies)


def add_identity(jobspec: Any, identity: Identity) -> None:
    """Stamp the job with its study, step, submission token and attempt
    (model/records.py), readable by its owner, guest or not, with job-info.lookup."""
    jobspec.setattr(IDENTITY_PATH, identity.as_data())


def jobspec_json(jobspec: Any) -> str:
    """The jobspec as the JSON text the broker receives."""
    return jobspec.dumps()
