"""Jobspecs built with the bindings' own factories, from a JobRequest."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from typing import Any

from maestro_flux.broker.bindings import bindings
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


def _dependencies(request: JobRequest) -> list[str] | None:
    found = list(request.get("dependency", []))
    if request.get("begin-time"):
        util = importlib.import_module(bindings().__name__ + ".util")
        when = util.parse_datetime(request.get("begin-time")).timestamp()
        found.append(f"begin-time:{when}")
    return found or None


def _in_workspace(arg: str, cwd: str) -> str:
    """An --add-file argument with a relative path made relative to the step workspace,
    where ``flux batch`` of the written script would look for it."""
    name, sep, data = arg.partition("=")
    path = data if sep else name
    if "\n" in path or "\\n" in path or os.path.isabs(path):
        return arg
    located = os.path.join(cwd, path)
    return f"{name}={located}" if sep else f"{os.path.basename(path)}={located}"


def _applied(request: JobRequest) -> dict[str, Any]:
    """Keyword arguments of ``Jobspec.apply_options`` for the request's options."""
    res = request.resources
    return {
        # The environment is set afterwards from maestro-flux's deny-list policy.
        "env": ["-*"],
        "rlimit": list(request.get("rlimit", [])),
        "time_limit": res.duration or None,
        "signal": request.get("signal"),
        "dependency": _dependencies(request),
        "requires": request.get("requires"),
        "attributes": dict(request.get("setattr", {})) or None,
        "shell_options": dict(request.get("setopt", {})) or None,
        "add_file": [_in_workspace(a, request.cwd) for a in request.get("add-file", [])],
    }


def _batch_jobspec(request: JobRequest, script_text: str) -> Any:
    res = request.resources
    return bindings().job.JobspecV1.from_batch(
        content=script_text, nslots=res.slots, nodes=res.nodes,
        cores_per_slot=res.cores_per_slot, gpus_per_slot=res.gpus_per_slot or None,
        exclusive=res.exclusive, broker_opts=split_commas(request.get("broker-opts")) or None,
        conf=_nested_dict(dict(request.get("conf", {}))), name=request.name,
        queue=request.get("queue"), bank=request.get("bank"), cwd=request.cwd,
        output=request.output, error=request.error, **_applied(request))


def _direct_jobspec(request: JobRequest, script_path: str, shell: list[str]) -> Any:
    res = request.resources
    jobspec = bindings().job.JobspecV1.from_command(
        [*shell, script_path], num_tasks=1, cores_per_task=res.cores_per_slot,
        gpus_per_task=res.gpus_per_slot or None, num_nodes=res.nodes, exclusive=res.exclusive)
    jobspec.apply_options(**_applied(request))
    jobspec.setattr("system.job.name", request.name)
    jobspec.cwd = request.cwd
    jobspec.stdout = request.output
    jobspec.stderr = request.error
    if request.get("queue"):
        jobspec.queue = request.get("queue")
    if request.get("bank"):
        jobspec.setattr("system.bank", request.get("bank"))
    return jobspec


def build_jobspec(request: JobRequest, script_text: str, script_path: str,
                  shell: list[str], environment: dict[str, str]) -> Any:
    """A JobspecV1 for the request, built with the bindings' own factories.

    A nested step is ``JobspecV1.from_batch`` (``flux batch``'s own code path:
    ``from_batch_command`` plus ``apply_options(prog="batch")``); a direct step
    is ``from_command`` running the written script with ``shell`` (its ``#!``
    interpreter and arguments), plus
    ``apply_options``.
    """
    if request.resources.nested:
        jobspec = _batch_jobspec(request, script_text)
    else:
        jobspec = _direct_jobspec(request, script_path, shell)
    jobspec.environment = environment
    return jobspec


def jobspec_json(jobspec: Any) -> str:
    """The jobspec as the JSON text the broker receives."""
    return jobspec.dumps()
