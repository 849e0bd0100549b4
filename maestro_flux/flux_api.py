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
import os
from collections.abc import Iterable
from functools import lru_cache
from types import ModuleType
from typing import Any

from maestro_flux.errors import BindingsMissing
from maestro_flux.request import JobRequest, jsonish

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


def _set_extras(jobspec: Any, request: JobRequest) -> None:
    for key, value in request.extra.setattr.items():
        jobspec.setattr(key, 1 if value is None else jsonish(value))
    for key, value in request.extra.setopt.items():
        jobspec.setattr_shell_option(key, 1 if value is None else jsonish(value))


def build_jobspec(request: JobRequest, script_text: str, script_path: str,
                  shell: str, environment: dict[str, str]) -> Any:
    """A JobspecV1 for the request, built with the bindings' own factories.

    A nested step is ``from_batch_command`` (what ``flux batch`` calls); a direct
    step is ``from_command`` running the written script with ``shell``.
    """
    spec_class = bindings().job.JobspecV1
    res = request.resources
    if res.nested:
        conf = {key: jsonish(value) for key, value in request.extra.conf.items()} or None
        jobspec = spec_class.from_batch_command(
            script_text, request.name, num_slots=res.slots, cores_per_slot=res.cores_per_slot,
            gpus_per_slot=res.gpus_per_slot or None, num_nodes=res.nodes,
            exclusive=res.exclusive, conf=conf)
    else:
        jobspec = spec_class.from_command(
            [shell, script_path], num_tasks=1, cores_per_task=res.cores_per_slot,
            gpus_per_task=res.gpus_per_slot or None, num_nodes=res.nodes,
            exclusive=res.exclusive)
    jobspec.setattr("system.job.name", request.name)
    jobspec.cwd = request.cwd
    jobspec.environment = environment
    jobspec.stdout = request.output
    jobspec.stderr = request.error
    if res.duration:
        jobspec.duration = res.duration
    if request.queue:
        jobspec.queue = request.queue
    if request.bank:
        jobspec.setattr("system.bank", request.bank)
    _set_extras(jobspec, request)
    return jobspec


def jobspec_json(jobspec: Any) -> str:
    """The jobspec as the JSON text the broker receives."""
    return jobspec.dumps()


def submit(handle: Any, jobspec: Any, urgency: int, waitable: bool = False) -> int:
    """Submit one jobspec and wait for its id (one ingest round trip)."""
    return int(bindings().job.submit(handle, jobspec, urgency=urgency, waitable=waitable))


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


def submit_nowait(handle: Any, jobspec: Any, urgency: int) -> Any:
    """Send one submit request without waiting; ``submitted_id`` reads its answer."""
    return bindings().job.submit_async(handle, jobspec, urgency=urgency)


def submitted_id(future: Any) -> int:
    """The id the broker assigned to a ``submit_nowait`` request (waits for it)."""
    return int(future.get_id())
