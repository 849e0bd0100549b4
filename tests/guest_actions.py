"""What the guest tests do, run as the guest: ``python guest_actions.py ACTION [ARG...]``.

Each action prints one JSON line for the test to check. It runs in the guest's own
process (tests/multiuser.py), against the broker FLUX_URI names, with the
bindings MAESTRO_FLUX_BINDINGS names (the double) or flux-python. It imports only
maestro-flux and Maestro, which the guest's installation has, and nothing of tests/.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from maestro_flux.broker import bindings

#: The requests of tests/recordings/0.88.0/guest_rpcs.json, as they were sent.
ANY_USER = 0xFFFFFFFF
REQUESTS: dict[str, tuple[str, Any]] = {
    "config.get": ("config.get", None),
    "job-manager.jobtap": ("job-manager.jobtap", {"query_only": True}),
    "job-list.list": ("job-list.list", {"max_entries": 0, "attrs": [],
                                        "constraint": {"userid": [os.getuid()]}}),
    "job-list.list (all users)": ("job-list.list", {"max_entries": 0, "attrs": ["userid"],
                                                    "constraint": {"userid": [ANY_USER]}}),
    "resource.status": ("resource.status", None),
    "sched.resource-status": ("sched.resource-status", None),
    "job-manager.queue-list": ("job-manager.queue-list", None),
    "job-manager.queue-status": ("job-manager.queue-status", None),
}
ATTRS = ("instance-level", "size", "version", "security.owner")


def _outcome(call) -> dict:
    try:
        return {"ok": call()}
    except OSError as err:
        return {"error": str(err)}


def requests() -> dict:
    """What the broker answers this user to each recorded request."""
    handle = bindings.connect(None)
    found = {name: _outcome(lambda t=topic, p=payload: handle.rpc(t, p).get())
             for name, (topic, payload) in REQUESTS.items()}
    found.update({f"attr.get {name}": _outcome(lambda n=name: handle.attr_get(n))
                  for name in ATTRS})
    found["job-info.lookup"] = own_job_lookup()  # last: it submits a job of its own
    return found


def own_job_lookup() -> dict:
    """job-info.lookup of a job of this user's (how resume reads a job's identity)."""
    flux = bindings.bindings()
    handle = bindings.connect(None)
    jobspec = flux.job.JobspecV1.from_command(["true"])
    jobspec.cwd = "/"
    jobspec.environment = {}
    jobid = int(flux.job.submit(handle, jobspec))
    answer = handle.rpc("job-info.lookup", {"id": jobid, "keys": ["jobspec"], "flags": 0})
    return _outcome(lambda: f"keys {sorted(answer.get())}")


def identity(cwd: str) -> dict:
    """A job stamped with a maestro-flux identity, read back and found by its token."""
    from maestro_flux.broker import identity as identities
    from maestro_flux.broker import jobspec as jobspecs
    from maestro_flux.model.records import Identity

    flux = bindings.bindings()
    handle = bindings.connect(None)
    jobspec = flux.job.JobspecV1.from_command(["true"])
    jobspec.cwd = cwd
    jobspec.environment = dict(os.environ)
    jobspec.setattr("system.job.name", "identity-step")
    jobspecs.add_identity(jobspec, Identity(cwd, "identity-step", "t0k3n", attempt=2))
    jobid = int(flux.job.submit(handle, jobspec))
    found = identities.find_tokens(handle, ["t0k3n"], ["identity-step"], time.time() - 600)
    return {"identity": identities.identity_of(handle, jobid).as_data(),
            "found": found == {"t0k3n": jobid}}


def refusals(cwd: str) -> dict:
    """The broker's answers to what only the owner may ask at submission."""
    flux = bindings.bindings()
    handle = bindings.connect(None)
    jobspec = flux.job.JobspecV1.from_command(["true"])
    jobspec.cwd = cwd
    jobspec.environment = dict(os.environ)
    found = {}
    for case, kwargs in (("urgency_17", {"urgency": 17}), ("urgency_31", {"urgency": 31}),
                         ("waitable", {"waitable": True}), ("novalidate", {"novalidate": True})):
        found[case] = _outcome(
            lambda k=kwargs: flux.job.submit_async(handle, jobspec, **k).get_id())
        found[case].pop("ok", None)
    return found


def submit_sleep(cwd: str) -> dict:
    """A job of this user's that runs until canceled (the owner's job, for a guest)."""
    flux = bindings.bindings()
    jobspec = flux.job.JobspecV1.from_command(["sleep", "600"])
    jobspec.cwd = cwd
    jobspec.environment = dict(os.environ)
    jobid = flux.job.submit(bindings.connect(None), jobspec)
    return {"id": str(flux.job.JobID(jobid).f58)}


def _steps_submitted(names: dict[str, str], workdir: str) -> tuple[Any, dict[str, str]]:
    from maestrowf.datastructures.core import StudyStep

    from maestro_flux.maestro.adapter import FluxAdapter

    adapter = FluxAdapter(type="flux")
    ids = {}
    for name, priority in names.items():
        step = StudyStep()
        step.name = name
        step.description = name
        step.run.update(cmd="sleep 600", priority=priority)
        workspace = os.path.join(workdir, name)
        os.makedirs(workspace)
        _, script, _ = adapter.write_script(workspace, step)
        record = adapter.submit(step, script, workspace)
        ids[name] = record.job_identifier
    return adapter, ids


def priorities(workdir: str, *names: str) -> dict:
    """Submit one step per priority name through the adapter; the urgency each
    job got, then cancel them all through the adapter."""
    adapter, ids = _steps_submitted({f"p_{n.replace('.', '_')}": n for n in names}, workdir)
    handle = bindings.connect(None)
    payload = {"max_entries": 0, "attrs": ["urgency"], "constraint": {"userid": [os.getuid()]}}
    urgencies: dict[str, int] = {}
    for _ in range(100):
        listed = {int(e["id"]): e["urgency"]
                  for e in handle.rpc("job-list.list", payload).get()["jobs"]}
        urgencies = {name: listed.get(bindings.parse_jobid(jobid))
                     for name, jobid in ids.items() if jobid}
        if None not in urgencies.values():
            break
        time.sleep(0.1)
    record = adapter.cancel_jobs([jobid for jobid in ids.values() if jobid])
    return {"urgency": {name[2:].replace("_", "."): value for name, value in urgencies.items()},
            "submitted": sorted(name[2:].replace("_", ".") for name, jobid in ids.items()
                                if jobid),
            "cancel": record.cancel_status.name}


def _kept_lines() -> list[str]:
    """Every line maestro-flux logs at WARNING or above from now on."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.levelname}: {record.getMessage()}")

    logging.getLogger("maestro_flux").addHandler(Keep(logging.WARNING))
    return lines


def cancel(jobid: str) -> dict:
    """Cancel one job through the adapter: the record and every line it logged."""
    from maestro_flux.maestro.adapter import FluxAdapter

    lines = _kept_lines()
    record = FluxAdapter(type="flux").cancel_jobs([jobid])
    return {"code": record.cancel_status.name, "lines": lines}


def step(workdir: str, batch: str, run: str) -> dict:
    """One step (batch block and run keys as JSON) written, submitted and waited for
    through the adapter: its final state and every line maestro-flux logged."""
    from maestrowf.abstracts.enums import State
    from maestrowf.datastructures.core import StudyStep

    from maestro_flux.maestro.adapter import FluxAdapter

    lines = _kept_lines()
    adapter = FluxAdapter(**{"type": "flux", **json.loads(batch)})
    one = StudyStep()
    one.name, one.description = "step", "step"
    one.run.update(json.loads(run))
    _, script, _ = adapter.write_script(workdir, one)
    record = adapter.submit(one, script, workdir)
    state = None
    if record.submission_code.name == "OK":
        ends = {State.FINISHED, State.FAILED, State.CANCELLED, State.TIMEDOUT, State.UNKNOWN}
        for _ in range(600):
            state = adapter.check_jobs([record.job_identifier])[1][record.job_identifier]
            if state in ends:
                break
            time.sleep(0.1)
    return {"submitted": record.submission_code.name, "state": state and state.name,
            "lines": lines}


ACTIONS = {"requests": requests, "refusals": refusals, "submit-sleep": submit_sleep,
           "identity": identity,
           "priorities": priorities, "cancel": cancel, "step": step}

if __name__ == "__main__":
    print(json.dumps(ACTIONS[sys.argv[1]](*sys.argv[2:])))
