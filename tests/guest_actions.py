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

#: The requests of tests/recordings/VERSION/guest_rpcs.json, as they were sent.
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
#: flux-core's FLUX_RPC_STREAMING (rpc.h), the same in every version.
FLUX_RPC_STREAMING = 2
#: RUN | CLEANUP | INACTIVE, as job-list's "states" constraint takes them.
RUN_CLEANUP_INACTIVE = 16 + 32 + 64
#: The journal's request as the conductor's wait sends it: no history, job ends and starts.
JOURNAL = {"full": False, "allow": {"start": 1, "finish": 1, "clean": 1, "exception": 1}}


def _outcome(call) -> dict:
    try:
        return {"ok": call()}
    except OSError as err:
        return {"error": str(err)}


def _keys(answer: Any) -> str:
    return f"keys {sorted(answer)}" if isinstance(answer, dict) else type(answer).__name__


def _whose(answer: dict, owner: str) -> str:
    """Whose jobs a job-list answer lists (this user is the guest)."""
    if not answer["jobs"]:
        return "no jobs"
    if any("userid" not in entry for entry in answer["jobs"]):
        return f"jobs, each with {_keys(answer['jobs'][0])}"
    roles = {"guest" if entry["userid"] == os.getuid() else
             "owner" if str(entry["userid"]) == owner else "others"
             for entry in answer["jobs"]}
    return "jobs of " + ", ".join(sorted(roles))


def _summary(name: str, answer: Any, owner: str) -> Any:
    """What is recorded of an answer: its shape, never what changes from run to run."""
    if name.startswith("job-list.list"):
        return _whose(answer, owner)
    return _keys(answer)


def _submit_true(handle: Any) -> int:
    """A job of this user's that runs ``true``."""
    flux = bindings.bindings()
    jobspec = flux.job.JobspecV1.from_command(["true"])
    jobspec.cwd = "/"
    jobspec.environment = {}
    return int(flux.job.submit(handle, jobspec))


def requests() -> dict:
    """What the broker answers this user to each recorded request, the user having
    submitted one job of its own first (the instance owner has one too: the test's)."""
    handle = bindings.connect(None)
    since = time.time()
    jobid = _submit_true(handle)
    owner = handle.attr_get("security.owner")
    found = {name: _outcome(lambda n=name, t=topic, p=payload:
                            _summary(n, handle.rpc(t, p).get(), owner))
             for name, (topic, payload) in REQUESTS.items()}
    found.update({f"attr.get {name}": _outcome(lambda n=name: handle.attr_get(n))
                  for name in ATTRS})
    found["job-info.lookup"] = own_job_lookup(handle, jobid)
    found.update(listed_since(handle, jobid, since))
    return found


def own_job_lookup(handle: Any, jobid: int) -> dict:
    """job-info.lookup of a job of this user's (how resume reads a job's identity)."""
    answer = handle.rpc("job-info.lookup", {"id": jobid, "keys": ["jobspec"], "flags": 0})
    return _outcome(lambda: f"keys {sorted(answer.get())}")


def _since(handle: Any, since: float) -> dict:
    """job-list of this user's jobs running or ended since ``since`` (the guest's way to
    learn what changed), with the attributes the wait reads."""
    return handle.rpc("job-list.list", {
        "max_entries": 0, "since": since, "attrs": ["state", "t_inactive"],
        "constraint": {"and": [{"userid": [os.getuid()]},
                               {"states": [RUN_CLEANUP_INACTIVE]}]}}).get()


def _own(answer: dict, jobid: int) -> dict | None:
    return next((entry for entry in answer["jobs"] if entry["id"] == jobid), None)


def _ended(handle: Any, jobid: int, since: float) -> dict | None:
    """The job's entry once job-list lists it ended (None if it never does)."""
    for _ in range(600):
        entry = _own(_since(handle, since), jobid)
        if entry and entry["state"] == 64:
            return entry
        time.sleep(0.1)
    return None


def listed_since(handle: Any, jobid: int, since: float) -> dict:
    """job-list with "since" and a states constraint: the job submitted after ``since``
    once job-list lists it ended, then the same asked since its end."""
    name = "job-list.list since, RUN|CLEANUP|INACTIVE"
    try:
        entry = _ended(handle, jobid, since)
    except OSError as err:
        return {name: {"error": str(err)}}
    if entry is None:
        return {name: {"ok": "the job is never listed ended"}}
    return {name: {"ok": {"state": entry["state"], "attrs": sorted(entry)}},
            "job-list.list since its end": _outcome(
                lambda: {"listed": _own(_since(handle, entry["t_inactive"]), jobid)
                         is not None})}


def _streamed(handle: Any, topic: str, payload: dict) -> Any:
    """A streaming request (FLUX_RPC_STREAMING); bindings that cannot send one say so."""
    try:
        return handle.rpc(topic, payload, flags=FLUX_RPC_STREAMING)
    except TypeError as err:
        raise NotImplementedError(f"the bindings' rpc() sends no streaming request ({err})") \
            from None


def _journal_consumer(handle: Any) -> Any:
    flux = bindings.bindings()
    event = flux.job.JournalConsumer(handle, full=False).start().poll(1)
    return "None" if event is None else f"an event: {event.name}"


def _eventlog(handle: Any, jobid: int) -> dict:
    """job-info.eventlog-watch of a job of this user's: the names of its events, to
    its clean (the job runs ``true``), and the keys of a response."""
    future = _streamed(handle, "job-info.eventlog-watch",
                       {"id": jobid, "path": "eventlog", "flags": 0})
    names: list[str] = []
    keys = ""
    while not names or (names[-1] != "clean" and len(names) < 40):
        response = future.get()
        keys = _keys(response)
        event = response["event"]
        names.append((json.loads(event) if isinstance(event, str) else event)["name"])
        future.reset()
    return {"response": keys, "events": names}


def streams() -> dict:
    """What the broker answers this user to the streaming requests of the conductor's
    wait: the job manager's journal (raw, and flux.job.JournalConsumer where the bindings
    have it), and job-info.eventlog-watch of a job of this user's."""
    handle = bindings.connect(None)
    try:  # sent before the job, so that its events would come if it were answered
        journal = _streamed(handle, "job-manager.events-journal", JOURNAL)
    except NotImplementedError as err:
        return {"unsupported": str(err)}
    jobid = _submit_true(handle)
    found = {"job-manager.events-journal": _outcome(lambda: _keys(journal.get()))}
    flux = bindings.bindings()
    found["flux.job.JournalConsumer"] = (
        _outcome(lambda: _journal_consumer(handle)) if hasattr(flux.job, "JournalConsumer")
        else {"absent": "flux.job has no JournalConsumer"})
    found["job-info.eventlog-watch"] = _outcome(lambda: _eventlog(handle, jobid))
    return found


def submit_true() -> dict:
    """A job of this user's that runs ``true`` (the owner's job, for a guest)."""
    return {"id": _submit_true(bindings.connect(None))}


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


ACTIONS = {"requests": requests, "streams": streams, "refusals": refusals,
           "submit-sleep": submit_sleep, "submit-true": submit_true,
           "identity": identity,
           "priorities": priorities, "cancel": cancel, "step": step}

if __name__ == "__main__":
    print(json.dumps(ACTIONS[sys.argv[1]](*sys.argv[2:])))
