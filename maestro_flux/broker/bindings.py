"""The only module that touches the Flux Python bindings.

Everything else in maestro-flux is plain Python and deals in plain data
(JobRequest in, ints and dicts out). The bindings are imported lazily, on the
first call that needs a broker, so that importing maestro-flux, dry runs and
script writing work where flux-python is not installed.

``MAESTRO_FLUX_BINDINGS`` names a module to use in place of ``flux``; the
contract tests point it at their test double.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import io
import os
from collections.abc import Iterable
from functools import lru_cache
from types import ModuleType
from typing import Any

from maestro_flux.model.errors import BindingsMissing
from maestro_flux.model.request import JobRequest

BINDINGS_ENV = "MAESTRO_FLUX_BINDINGS"
LIST_ATTRS = ["state", "result", "waitstatus", "exception_occurred", "exception_type",
              "exception_note"]

INSTALL_HINT = ("install the bindings that match your broker: run 'flux version' to see "
                "its version V, then pip install \"flux-python==V\" ply, and make sure "
                "libflux-core.so.2 is on LD_LIBRARY_PATH")


@lru_cache(maxsize=1)
def bindings() -> ModuleType:
    """The ``flux`` package (or its stand-in), with ``flux.job`` loaded.

    Raises:
        BindingsMissing: one line saying what is missing and how to install it.
    """
    name = os.environ.get(BINDINGS_ENV, "flux")
    try:
        root = importlib.import_module(name)
        importlib.import_module(name + ".job")
        importlib.import_module(name + ".uri")
    except ImportError as err:
        raise BindingsMissing(f"the Flux Python bindings cannot be imported ({err}); "
                              f"{INSTALL_HINT}") from None
    return root


def bindings_version() -> str | None:
    """flux-python's installed version, read without importing it."""
    try:
        return importlib.metadata.version("flux-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def connect(uri: str | None) -> Any:
    """Open a handle on the broker at ``uri`` (None: FLUX_URI, else the system instance)."""
    flux = bindings()
    return flux.Flux(uri) if uri else flux.Flux()


def attr(handle: Any, name: str) -> str:
    """A broker attribute (an RPC the first time)."""
    return handle.attr_get(name)


def resolve_uri(target: str) -> str:
    """What ``flux uri TARGET`` prints: Flux's own resolver, with its plugins
    (jobid:, slurm:, lsf:, pid:); local:// and ssh:// come back unchanged.

    Raises whatever the resolver raises: ValueError, OSError or
    NotImplementedError (no plugin for the scheme).
    """
    return str(bindings().uri.FluxURIResolver().resolve(target))


def config(handle: Any) -> dict:
    """The instance's configuration (``flux config get``), queues included."""
    return handle.rpc("config.get").get()


def jobtap_plugins(handle: Any) -> list[str]:
    """Names of the job-manager plugins loaded (``flux jobtap list``)."""
    return list(handle.rpc("job-manager.jobtap", {"query_only": True}).get()["plugins"])


def _split(values: Iterable[str] | None) -> list[str]:
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
        exclusive=res.exclusive, broker_opts=_split(request.get("broker-opts")) or None,
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


def submit(handle: Any, jobspec: Any, urgency: int, flags: Iterable[str] = ()) -> int:
    """Submit one jobspec and wait for its id (one ingest round trip)."""
    return submitted_id(submit_nowait(handle, jobspec, urgency, flags))


@lru_cache(maxsize=1)
def _directive_module() -> ModuleType:
    """flux-python's RFC 36 directive parser, loaded from its file alone.

    ``flux/job/directives.py`` is plain Python; importing it through the
    ``flux`` package would load libflux-core, which directive reading must not
    need (``maestro-flux render`` works without a broker install).
    """
    spec = importlib.util.find_spec("flux")
    if spec is None or not spec.submodule_search_locations:
        raise BindingsMissing("reading #flux: directives needs flux-python; pip install "
                              "\"flux-python==V\" ply, V being your 'flux version'")
    path = os.path.join(spec.submodule_search_locations[0], "job", "directives.py")
    loader_spec = importlib.util.spec_from_file_location("maestro_flux._flux_directives", path)
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    return module


def parse_directives(script_text: str) -> list[tuple[int, list[str]]]:
    """``(line, arguments)`` of each ``#flux:`` directive, parsed as ``flux batch`` does.

    Raises:
        ValueError: the directive parser's own message (with its line).
        BindingsMissing: flux-python is not installed.
    """
    parser = _directive_module().DirectiveParser(io.StringIO(script_text))
    return [(d.lineno, list(d.args)) for d in parser.directives if d.action == "SETARGS"]


def list_jobs(handle: Any, since: float = 0.0) -> list[dict]:
    """Every job of this user that is active or went inactive after ``since``.

    One ``job-list.list`` request and one response, whatever the number of jobs.
    Asked for as a plain RPC, not streamed as ``flux.job.job_list`` asks: job-list
    then streams one message per job, and decoding 10k messages in Python took
    ~0.8 s where one 10k-job message takes a few hundredths.
    """
    payload = {"max_entries": 0, "attrs": LIST_ATTRS, "since": since,
               "constraint": {"and": [{"userid": [os.getuid()]}]}}
    return handle.rpc("job-list.list", payload).get()["jobs"]


def cancel_all(handle: Any, jobids: Iterable[int], reason: str) -> dict[int, OSError | None]:
    """Cancel many jobs in one reactor pass, without a round trip per job.

    Returns:
        jobid -> None if canceled, else the OSError the broker answered.
    """
    job = bindings().job
    outcome: dict[int, OSError | None] = {}

    def done(future: Any, jobid: int) -> None:
        try:
            future.get()
            outcome[jobid] = None
        except OSError as err:
            outcome[jobid] = err

    for jobid in jobids:
        job.cancel_async(handle, jobid, reason).then(done, jobid)
    handle.reactor_run()
    return outcome


def parse_jobid(text: str) -> int:
    """Any id form ``flux.job.JobID`` parses (used for the mnemonic words form)."""
    return int(bindings().job.JobID(text))


def submit_nowait(handle: Any, jobspec: Any, urgency: int, flags: Iterable[str] = ()) -> Any:
    """Send one submit request without waiting; ``submitted_id`` reads its answer."""
    # flux_options checked the flag names when the options were read.
    kwargs = {flag: True for flag in _split(flags)}
    return bindings().job.submit_async(handle, jobspec, urgency=urgency, **kwargs)


def submitted_id(future: Any) -> int:
    """The id the broker assigned to a ``submit_nowait`` request (waits for it)."""
    return int(future.get_id())
