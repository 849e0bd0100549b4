"""The test double's broker: a process that owns jobs, like ``flux start``.

It listens on a Unix socket at ``<rundir>/local-0`` (so its URI has the same
``local://`` form as Flux's), runs each job's command as a local process, and
answers the requests maestro-flux makes with the states, results, return
codes, events and error messages that a flux-core broker of the version it plays
gives (versions.py; tests/recordings/VERSION/). Start it with ``python -m fluxdouble``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fluxdouble import dependencies, versions
from fluxdouble.jobid import F58_ASCII_PREFIX, f58

STATE = {"NEW": 1, "DEPEND": 2, "PRIORITY": 4, "SCHED": 8, "RUN": 16, "CLEANUP": 32,
         "INACTIVE": 64}
RESULT = {"COMPLETED": 1, "FAILED": 2, "CANCELED": 4, "TIMEOUT": 8}
SIGALRM_STATUS = (128 + signal.SIGALRM) << 8
HERE = os.path.dirname(os.path.abspath(__file__))


#: Topics answered as a stream (FLUX_RPC_STREAMING), until canceled (TOPIC-cancel).
STREAMING = {"job-manager.events-journal", "job-info.eventlog-watch"}


@dataclass
class Listener:
    """A streaming request: where its responses go, how it is ended (an error response,
    ENODATA at its end), and what it asked for: the job manager's journal, with its
    filter (``{"full"?b, "allow"?{name:1}, "deny"?{name:1}}``, journal.c), or one job's
    eventlog (``{"id":I, "path":"eventlog"}``, job-info)."""

    send: Any
    request: dict
    end: Any = None
    topic: str = "job-manager.events-journal"

    def wants(self, name: str) -> bool:
        allow, deny = self.request.get("allow"), self.request.get("deny")
        return (allow is None or name in allow) and (deny is None or name not in deny)

    def events(self, job_id: int, events: list) -> bool:
        """Send what it wants of ``events``; False once the stream has ended."""
        if self.topic == "job-info.eventlog-watch":
            if job_id != self.request.get("id"):
                return True
            for event in events:
                self.send({"event": event})
                if event["name"] == "clean":  # the eventlog is complete: the watch ends
                    self.end(errno.ENODATA, "No data available")
                    return False
            return True
        chosen = [event for event in events if self.wants(event["name"])]
        if chosen:
            self.send({"id": job_id, "events": chosen})
        return True


class RequestError(Exception):
    def __init__(self, errnum: int, text: str):
        super().__init__(text)
        self.errnum = errnum


@dataclass
class Job:
    id: int
    jobspec: dict
    urgency: int
    userid: int
    state: str = "NEW"
    t_submit: float = field(default_factory=time.time)
    t_inactive: float | None = None
    waitstatus: int | None = None
    exception: dict | None = None
    proc: subprocess.Popen | None = None
    cores: int = 1
    gpus: int = 0
    slots: int = 1
    nodes: int = 1
    events: list = field(default_factory=list)
    annotations: dict = field(default_factory=dict)
    queue: str | None = None
    #: Descriptions of the dependencies not yet met ("after-success=ID"), in DEPEND.
    waiting: list = field(default_factory=list)
    #: The job had a dependency (job-list lists "dependencies" from then on).
    dependency_set: bool = False

    @property
    def allocated(self) -> bool:
        return any(event["name"] == "alloc" for event in self.events)

    @property
    def name(self) -> str:
        system = self.jobspec.get("attributes", {}).get("system", {})
        name = system.get("job", {}).get("name")
        return name or os.path.basename(self.jobspec["tasks"][0]["command"][0])

    def result(self) -> str:
        if self.exception and self.exception["severity"] == 0:
            kind = self.exception["type"]
            return {"cancel": "CANCELED", "timeout": "TIMEOUT"}.get(kind, "FAILED")
        return "COMPLETED" if self.waitstatus == 0 else "FAILED"


def _state_terms(payload: dict) -> list[dict]:
    states, results = payload.get("states", 0), payload.get("results", 0)
    if states and results:
        return [{"or": [{"states": [states]}, {"results": [results]}]}]
    if states or results:
        return [{"states" if states else "results": [states or results]}]
    return []


def _constraint(term: dict):
    """A job predicate for the RFC 31 operators job-list's clients send."""
    (op, values), = term.items()
    if op in ("and", "or", "not"):
        parts = [_constraint(value) for value in values]
        if op == "and":
            return lambda job: all(part(job) for part in parts)
        if op == "or":
            return lambda job: any(part(job) for part in parts)
        return lambda job: not any(part(job) for part in parts)
    if op == "userid":
        return lambda job: any(v in (job.userid, 0xFFFFFFFF) for v in values)
    if op == "states":
        return lambda job: any(STATE[job.state] & v for v in values)
    if op == "results":
        return lambda job: job.state == "INACTIVE" and any(RESULT[job.result()] & v
                                                           for v in values)
    if op == "name":
        return lambda job: job.name in values
    if op in TIMESTAMPS:
        return _timestamp(op, values)
    raise RequestError(errno.EINVAL, f"unknown constraint operator: {op}")


#: The timestamp operators of job-list's constraints (match.c), and the job's field.
TIMESTAMPS = {"t_submit": "t_submit", "t_inactive": "t_inactive"}
COMPARISONS = {">=": float.__ge__, "<=": float.__le__, ">": float.__gt__, "<": float.__lt__}


def _timestamp(op: str, values: list):
    """``{"t_submit": [">=1234.5"]}``: a job whose time compares so (one without that
    time, an active job for t_inactive, never matches), with match.c's errors."""
    if not values:
        raise RequestError(errno.EINVAL, "timestamp value not specified")
    if not isinstance(values[0], str):
        raise RequestError(errno.EINVAL, f"{op} value must be a string")
    for sign, compare in COMPARISONS.items():
        if values[0].startswith(sign):
            try:
                limit = float(values[0][len(sign):])
            except ValueError:
                raise RequestError(errno.EINVAL,
                                   f"invalid {op} value specified") from None
            field = TIMESTAMPS[op]
            return lambda job: (getattr(job, field) is not None
                                and compare(float(getattr(job, field)), limit))
    raise RequestError(errno.EINVAL, "timestamp comparison operator not specified")


def _as_ingested(jobspec: dict) -> dict:
    """The jobspec as job-ingest stores it: without its environment (job-ingest.c drops
    attributes.system.environment "to reduce its bulk", 0.61 to 0.88)."""
    system = jobspec.get("attributes", {}).get("system", {})
    if "environment" not in system:
        return jobspec
    stored = {**jobspec, "attributes": {**jobspec["attributes"], "system": dict(system)}}
    del stored["attributes"]["system"]["environment"]
    return stored


def _count(resources: list, kind: str = "core") -> int:
    """How many resources of ``kind`` (core, gpu, slot) a jobspec asks for in all."""
    total = 0
    for res in resources:
        inner = _count(res.get("with", []), kind)
        total += res["count"] * inner if res["type"] != kind else res["count"]
    return total


def _nodes(resources: list) -> int:
    return sum(res["count"] for res in resources if res["type"] == "node")


class Broker:
    def __init__(self, rundir: str, size: int, cores_per_node: int, owner: int,
                 queues: list[str], parent_uri: str | None = None, level: int = 0,
                 version: str | None = None, gpus_per_node: int = 0, list_lag: float = 0.0):
        self.version = versions.get(version)
        self.gpus_per_node = gpus_per_node
        #: job-list lags the job manager: a job is listed this long after its submission.
        self.list_lag = list_lag
        #: Consumers of the job manager's journal (job-manager.events-journal).
        self.listeners: list[Listener] = []
        self.parent_uri = parent_uri
        self.level = level
        self.rundir = rundir
        self.size = size
        self.cores_per_node = cores_per_node
        self.owner = owner
        self.queues = queues
        self.jobs: dict[int, Job] = {}
        self.lock = threading.RLock()
        self.free_cores = size * cores_per_node
        self.free_gpus = size * gpus_per_node
        self.free_nodes = size
        self.seq = 0
        #: Target job id -> the dependencies waiting on its end (dependencies.py).
        self.after: dict = {}
        self.start = time.time()
        self.uri = f"local://{rundir}/local-0"

    # -- ids ---------------------------------------------------------------
    def new_id(self) -> int:
        """FLUID-like ids: milliseconds since start, then a sequence number."""
        self.seq += 1
        ms = int((time.time() - self.start) * 1000) + 1000
        return (ms << 24) | (self.seq & 0x3FF)

    # -- requests ------------------------------------------------------------
    def handle(self, topic: str, payload: dict, cred: dict) -> dict:
        method = getattr(self, "rpc_" + topic.replace(".", "_").replace("-", "_"), None)
        if method is None:
            raise RequestError(errno.ENOSYS, f"Function not implemented: {topic}")
        with self.lock:
            return method(payload, cred)

    def rpc_attr_get(self, payload: dict, cred: dict) -> dict:
        attrs = {"version": self.version.name, "instance-level": str(self.level),
                 "size": str(self.size), "rank": "0", "local-uri": self.uri,
                 "rundir": self.rundir, "security.owner": str(self.owner),
                 "broker.pid": str(os.getpid())}
        if self.parent_uri:
            attrs["parent-uri"] = self.parent_uri
        name = payload["name"]
        if name not in attrs:
            raise RequestError(errno.ENOENT, "ENOENT: No such file or directory")
        return {"value": attrs[name]}

    def _guest(self, cred: dict) -> bool:
        return cred["userid"] != self.owner or bool(cred.get("guest"))

    def _owner_only(self, cred: dict) -> None:
        # What a guest gets for an owner-only request (recordings: guest_rpcs.json).
        if self._guest(cred):
            raise RequestError(errno.EPERM, "Request requires owner credentials")

    def rpc_config_get(self, payload: dict | None, cred: dict) -> dict:
        # Guests get the whole configuration too. The first queue is the default, as
        # tests/brokers.py configures a real instance with named queues.
        if not self.queues:
            return {}
        return {"queues": {q: {} for q in self.queues},
                "policy": {"jobspec": {"defaults": {"system": {"queue": self.queues[0]}}}}}

    def rpc_job_manager_queue_list(self, payload: dict | None, cred: dict) -> dict:
        return {"queues": list(self.queues)}

    def rpc_job_manager_queue_status(self, payload: dict | None, cred: dict) -> dict:
        if payload is None:  # flux_request_unpack of an empty payload
            raise RequestError(errno.EPROTO, "Protocol error")
        name = payload.get("name")
        if name is not None and name not in self.queues or name is None and self.queues:
            raise RequestError(errno.EINVAL, f"'{name}' is not a valid queue" if name else
                               "default queue is not set")
        return {"enable": True, "start": True}

    def rpc_job_manager_jobtap(self, payload: dict | None, cred: dict) -> dict:
        self._owner_only(cred)
        # What a 0.88 broker without flux-accounting lists.
        return {"plugins": [".priority-default", ".limit-job-size", ".limit-duration",
                            ".dependency-after", ".dependency-singleton", ".begin-time",
                            ".validate-duration", ".update-duration", ".history",
                            ".post-event", ".update-queue"]}

    def _R(self) -> dict:
        children = {"core": f"0-{self.cores_per_node - 1}"}
        if self.gpus_per_node:
            children["gpu"] = f"0-{self.gpus_per_node - 1}"
        return {"version": 1, "execution": {
            "R_lite": [{"rank": f"0-{self.size - 1}" if self.size > 1 else "0",
                        "children": children}],
            "starttime": 0.0, "expiration": 0.0, "nodelist": [socket.gethostname()]}}

    def rpc_resource_status(self, payload: dict | None, cred: dict) -> dict:
        """Any user's, guests' too; the keys of the version played (guest_rpcs.json)."""
        answer = {"R": self._R(), "online": f"0-{self.size - 1}", "offline": "",
                  "exclude": "", "drain": {}}
        if self.version.name in versions.TORPID_RANKS:
            answer["torpid"] = ""
        return answer

    def rpc_sched_resource_status(self, payload: dict | None, cred: dict) -> dict:
        """sched-simple's: the owner's only from 0.88 on (guest_rpcs.json)."""
        if self.version.name not in versions.SCHED_STATUS_TO_GUESTS:
            self._owner_only(cred)
        return {"all": self._R(), "allocated": None, "down": None}

    def rpc_job_ingest_submit(self, payload: dict, cred: dict) -> dict:
        jobspec = json.loads(payload["J"])
        urgency = payload.get("urgency", 16)
        guest = self._guest(cred)
        if not 0 <= urgency <= 31:
            raise RequestError(errno.EINVAL, "urgency range is [0:31]")
        if guest and urgency > 16:
            raise RequestError(errno.EINVAL, "only the instance owner can submit with urgency >16")
        if guest and payload.get("flags", 0) & 4:
            raise RequestError(errno.EINVAL,
                               "only the instance owner can submit with FLUX_JOB_WAITABLE")
        if guest and payload.get("flags", 0) & 8:  # flux-core job-ingest's job.c
            raise RequestError(errno.EPERM,
                               "only the instance owner can submit with FLUX_JOB_NOVALIDATE")
        queue = jobspec.get("attributes", {}).get("system", {}).get("queue")
        if queue is not None and queue not in self.queues:
            # 0.88's two refusals: with named queues, and without any.
            if self.queues:
                raise RequestError(errno.EPERM, f"Invalid queue '{queue}' specified")
            raise RequestError(errno.EINVAL, f"'{queue}' is not a valid queue")
        job = Job(self.new_id(), jobspec, urgency, cred["userid"])
        pending = self._dependencies(job)  # refuses before the job exists, as flux does
        # The default queue (policy.jobspec.defaults.system.queue) is the first one.
        job.queue = queue or (self.queues[0] if self.queues else None)
        job.cores = max(1, _count(jobspec["resources"]))
        job.gpus = _count(jobspec["resources"], "gpu")
        job.slots = _count(jobspec["resources"], "slot")
        job.nodes = _nodes(jobspec["resources"])
        self.jobs[job.id] = job
        self._event(job, "submit", {"userid": job.userid, "urgency": urgency,
                                    "flags": payload.get("flags", 0), "version": 1})
        self._event(job, "validate", {})
        job.state = "DEPEND"
        for after in pending:
            self.after.setdefault(after.target, []).append(after)
            job.waiting.append(after.description)
            job.dependency_set = True
            self._event(job, "dependency-add", {"description": after.description})
        if not job.waiting:
            self._depend_met(job)
        return {"id": job.id}

    #: What job-list.list-attrs answers (src/modules/job-list/job_util.c's attributes,
    #: in its order); t_priority and t_sched from 0.88 on.
    LIST_ATTRS = ("userid", "urgency", "priority", "t_submit", "t_depend", "t_priority",
                  "t_sched", "t_run", "t_cleanup", "t_inactive", "state", "name", "cwd",
                  "queue", "project", "bank", "ntasks", "ncores", "duration", "nnodes",
                  "ranks", "nodelist", "expiration", "waitstatus", "success",
                  "exception_occurred", "exception_severity", "exception_type",
                  "exception_note", "result", "annotations", "dependencies")

    def _list_attrs(self) -> list[str]:
        return [a for a in self.LIST_ATTRS if self.version.job_list_priority_times
                or a not in ("t_priority", "t_sched")]

    def rpc_job_list_list_attrs(self, payload: dict | None, cred: dict) -> dict:
        return {"attrs": [*self._list_attrs(), "all"]}

    def rpc_job_list_list(self, payload: dict, cred: dict) -> dict:
        since = payload.get("since", 0.0)
        wanted = set(payload.get("attrs", []))
        if "constraint" in payload:
            match = _constraint(payload["constraint"])
        else:  # the older request form every recorded version still accepts
            match = _constraint({"and": [{"userid": [payload.get("userid", cred["userid"])]},
                                         *_state_terms(payload)]})
        jobs = []
        for job in sorted(self.jobs.values(), key=lambda j: -j.t_submit):
            if not match(job) or not self._caught_up(job):
                continue
            if job.state == "INACTIVE" and job.t_inactive <= since:
                continue
            self._valid_attrs(wanted)  # as job_to_json: checked per job listed
            jobs.append(self._listing(job, wanted))
        limit = payload.get("max_entries", 0)
        return {"jobs": jobs[:limit] if limit else jobs}

    def _valid_attrs(self, wanted: set) -> None:
        for attr in sorted(wanted - {"all", "id"}):
            if attr not in self._list_attrs():
                raise RequestError(errno.EINVAL, f"{attr} is not a valid attribute")

    def _times(self, job: Job) -> dict:
        """The state times job-list keeps, from the job's events: DEPEND at validate,
        PRIORITY at depend, SCHED at priority, RUN at alloc, CLEANUP at finish or a
        fatal exception, INACTIVE at clean (each the first time)."""
        times: dict = {}
        for event in job.events:
            key = {"validate": "t_depend", "depend": "t_priority", "priority": "t_sched",
                   "alloc": "t_run", "finish": "t_cleanup", "clean": "t_inactive"}.get(
                       event["name"])
            if event["name"] == "exception" and event["context"]["severity"] == 0:
                key = "t_cleanup"
            if key and key not in times:
                times[key] = event["timestamp"]
        if not self.version.job_list_priority_times:
            times.pop("t_priority", None)
            times.pop("t_sched", None)
        return times

    def _listing(self, job: Job, wanted: set) -> dict:
        entry = {"id": job.id, "userid": job.userid, "state": STATE[job.state], "name": job.name,
                 "urgency": job.urgency, "t_submit": job.t_submit, **self._times(job)}
        if job.allocated:
            entry["nnodes"] = max(1, job.nodes)
            entry["nodelist"] = socket.gethostname() if job.nodes <= 1 else \
                f"{socket.gethostname()},{socket.gethostname()}"
        if job.dependency_set:
            entry["dependencies"] = list(job.waiting)
        if job.state == "INACTIVE":
            entry["result"] = RESULT[job.result()]
            entry["t_inactive"] = job.t_inactive
        if job.waitstatus is not None:
            entry["waitstatus"] = job.waitstatus
        if job.annotations:
            entry["annotations"] = job.annotations
        if job.queue:
            entry["queue"] = job.queue
        entry["exception_occurred"] = job.exception is not None
        if job.exception:
            entry["exception_type"] = job.exception["type"]
            entry["exception_note"] = job.exception["note"]
            entry["exception_severity"] = job.exception["severity"]
        if "all" in wanted:
            return entry
        return {k: v for k, v in entry.items() if k == "id" or k in wanted}

    def _caught_up(self, job: Job) -> bool:
        """False while job-list has not seen the job yet (``--list-lag``)."""
        return time.time() - job.t_submit >= self.list_lag

    def rpc_job_list_list_id(self, payload: dict, cred: dict) -> dict:
        # A real job-list holds list-id until it has seen the job: the answer is the
        # same as without lag, only later.
        job = self.jobs.get(payload["id"])
        if job is None:
            raise RequestError(errno.ENOENT, f"JobID {payload['id']} unknown")
        return {"job": self._listing(job, set(payload.get("attrs", ["all"])))}

    def rpc_job_info_lookup(self, payload: dict, cred: dict) -> dict:
        """The jobspec as submitted, to its owner (a guest: its own jobs only)."""
        job = self.jobs.get(payload["id"])
        if job is None:
            raise RequestError(errno.ENOENT, "No such file or directory")
        if self._guest(cred) and cred["userid"] != job.userid:
            raise RequestError(errno.EPERM, "Operation not permitted")
        answer = {"id": job.id}
        for key in payload.get("keys", []):
            if key == "eventlog":  # RFC 18: one JSON object a line
                value = [{"timestamp": e["timestamp"], "name": e["name"],
                          **({"context": e["context"]} if e["context"] else {})}
                         for e in job.events]
                text = "".join(json.dumps(e) + "\n" for e in value)
            elif key == "jobspec":
                value = _as_ingested(job.jobspec)
                text = json.dumps(value)
            else:
                raise RequestError(errno.ENOENT, "No such file or directory")
            answer[key] = value if payload.get("flags", 0) & 1 else text
        return answer

    def rpc_job_manager_raise(self, payload: dict, cred: dict) -> dict:
        job = self.jobs.get(payload["id"])
        if job is None:
            raise RequestError(errno.ENOENT, "unknown job id")
        if job.state == "INACTIVE":
            raise RequestError(errno.ENOENT, "job is inactive")
        if self._guest(cred) and cred["userid"] != job.userid:
            # flux-core's job-manager raise.c, after the job is found active
            raise RequestError(errno.EPERM, "guests can only raise exceptions on their own jobs")
        self._exception(job, payload["type"], payload.get("note", ""), payload["severity"])
        return {}

    def rpc_job_manager_kill(self, payload: dict, cred: dict) -> dict:
        job = self.jobs.get(payload["id"])
        if job is None:
            raise RequestError(errno.ENOENT, "unknown job id")
        if job.state != "RUN":
            raise RequestError(errno.EINVAL, "job is inactive"
                               if job.state == "INACTIVE" else "job is not running")
        self._signal(job, payload.get("signum", signal.SIGTERM))
        return {}

    # -- dependencies (fluxdouble/dependencies.py) ----------------------------
    def _dependencies(self, job: Job) -> list:
        """The job's after-dependencies still to be met; RequestError if one never can."""
        system = job.jobspec.get("attributes", {}).get("system", {})
        pending = []
        try:
            for entry in system.get("dependencies") or []:
                after = dependencies.parse(job.id, entry)
                target = self.jobs.get(after.target)
                if not dependencies.check(after, target, job.userid, self.version):
                    pending.append(after)
        except dependencies.Refused as err:
            raise RequestError(err.errnum, str(err)) from None
        return pending

    def _depend_met(self, job: Job) -> None:
        self._event(job, "depend", {})
        job.state = "PRIORITY"
        self._event(job, "priority", {"priority": job.urgency})
        job.state = "SCHED"
        self._schedule()

    def _release_dependents(self, target: Job) -> None:
        """What the end of ``target`` does to the jobs waiting on it."""
        for after in self.after.pop(target.id, []):
            job = self.jobs[after.depid]
            if job.state != "DEPEND" or after.description not in job.waiting:
                continue  # ended (canceled, say) while it waited
            note = dependencies.outcome(after, target, self.version)
            if note is not None:
                self._exception(job, "dependency", note)
                continue
            job.waiting.remove(after.description)
            self._event(job, "dependency-remove", {"description": after.description})
            if not job.waiting:
                self._depend_met(job)

    # -- job life ------------------------------------------------------------
    def _event(self, job: Job, name: str, context: dict) -> None:
        event = {"name": name, "context": context, "timestamp": time.time()}
        job.events.append(event)
        for listener in list(self.listeners):
            try:
                if not listener.events(job.id, [event]):
                    self.unlisten(listener)
            except (OSError, ValueError):  # its connection is gone
                self.unlisten(listener)

    # -- the job manager's journal (job-manager.events-journal, journal.c) ----------
    def listen(self, topic: str, listener: Listener, cred: dict) -> None:
        """Send the backlog (the active jobs' events, or every job's with ``full``), the
        sentinel, then every new event, to ``listener``; the journal is the owner's."""
        if topic == "job-info.eventlog-watch":
            self._watch_eventlog(listener, cred)
            return
        if self._guest(cred):
            raise RequestError(errno.EPERM, "Request requires owner credentials")
        with self.lock:
            full = bool(listener.request.get("full"))
            for job in list(self.jobs.values()):
                if full or job.state != "INACTIVE":
                    listener.events(job.id, job.events)
            listener.send({"id": -1, "events": []})
            self.listeners.append(listener)

    def _watch_eventlog(self, listener: Listener, cred: dict) -> None:
        """One job's eventlog, its events so far then each new one, to its clean (a
        guest: its own jobs only, as job-info.lookup)."""
        with self.lock:
            job = self.jobs.get(listener.request.get("id"))
            if job is None:
                raise RequestError(errno.ENOENT, "No such file or directory")
            if self._guest(cred) and cred["userid"] != job.userid:
                raise RequestError(errno.EPERM, "Operation not permitted")
            if listener.events(job.id, list(job.events)):
                self.listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def rpc_job_manager_events_journal(self, payload: dict, cred: dict) -> dict:
        raise RequestError(errno.EPROTO, "job-manager.events requires streaming RPC flag")

    def _exception(self, job: Job, kind: str, note: str, severity: int = 0) -> None:
        job.exception = {"type": kind, "note": note, "severity": severity}
        self._event(job, "exception", {"type": kind, "severity": severity, "note": note,
                                       "userid": job.userid})
        if severity != 0:
            return
        if job.state == "RUN":
            self._signal(job, signal.SIGALRM if kind == "timeout" else signal.SIGTERM)
        elif job.state != "INACTIVE":
            self._finish(job, None)

    def _signal(self, job: Job, signum: int) -> None:
        if job.proc and job.proc.poll() is None:
            try:
                os.killpg(job.proc.pid, signum)
            except ProcessLookupError:
                pass

    def _schedule(self) -> None:
        pending = [j for j in self.jobs.values() if j.state == "SCHED" and j.urgency > 0]
        for job in sorted(pending, key=lambda j: (-j.urgency, j.t_submit)):
            nodes = job.nodes
            if nodes > self.size or job.cores > self.size * self.cores_per_node:
                cores = max(1, job.cores // max(1, nodes))
                note = "unsatisfiable request"
                if self.version.detailed_unsatisfiable_note:
                    note += (f": need {nodes or 1} node(s) with {cores} cores each, only "
                             f"{self.size} eligible")
                self._exception(job, "alloc", note)
                continue
            if job.gpus > self.size * self.gpus_per_node:
                total = self.size * self.gpus_per_node  # sched-simple's note, 0.88
                self._exception(job, "alloc", f"unsatisfiable request: need {job.slots} slot(s) "
                                f"with {job.gpus // max(1, job.slots)} GPU(s) each, only "
                                f"{total} available (total GPUs: {total})")
                continue
            if (job.cores > self.free_cores or nodes > self.free_nodes
                    or job.gpus > self.free_gpus):
                continue
            self.free_cores -= job.cores
            self.free_gpus -= job.gpus
            self.free_nodes -= nodes
            self._event(job, "alloc", {})
            self._start(job)

    def _start(self, job: Job) -> None:
        job.state = "RUN"
        self._event(job, "start", {})
        try:
            job.proc = launch(job, self)
        except OSError as err:
            command = job.jobspec["tasks"][0]["command"][0]
            self._exception(job, "exec", f"task 0 (host {socket.gethostname()}): start failed: "
                            f"{command}: {err.strerror}")
            self._release(job)
            self._finish(job, 127 << 8)
            return
        threading.Thread(target=self._wait, args=(job,), daemon=True).start()
        duration = job.jobspec["attributes"]["system"].get("duration") or 0
        if duration:
            timer = threading.Timer(duration, self._expire, args=(job,))
            timer.daemon = True
            timer.start()

    def _expire(self, job: Job) -> None:
        with self.lock:
            if job.state == "RUN":
                self._exception(job, "timeout", "resource allocation expired")

    def _wait(self, job: Job) -> None:
        status = job.proc.wait()
        # The job shell reports a task killed by signal N as exit code 128+N.
        waitstatus = (128 - status) << 8 if status < 0 else status << 8
        with self.lock:
            self._release(job)
            self._finish(job, waitstatus)
            self._schedule()

    def _release(self, job: Job) -> None:
        self.free_cores += job.cores
        self.free_gpus += job.gpus
        self.free_nodes += job.nodes

    def _finish(self, job: Job, waitstatus: int | None) -> None:
        if job.state == "INACTIVE":
            return
        if waitstatus is not None:
            job.waitstatus = waitstatus
            self._event(job, "finish", {"status": waitstatus})
            self._event(job, "release", {"ranks": "all", "final": True})
            self._event(job, "free", {})
        job.state = "INACTIVE"
        self._event(job, "clean", {})
        job.t_inactive = time.time()
        self._release_dependents(job)


def _expand(template: str, job: Job) -> str:
    for tag, value in (("{{id.f58plain}}", f58(job.id, F58_ASCII_PREFIX)),
                       ("{{id.dec}}", str(job.id)), ("{{id.f58}}", f58(job.id)),
                       ("{{id}}", f58(job.id)), ("{{jobid}}", f58(job.id)),
                       ("{{name}}", job.name)):
        template = template.replace(tag, value)
    return template


def _stream(job: Job, name: str, cwd: str, fallback):
    options = job.jobspec["attributes"]["system"].get("shell", {}).get("options", {})
    path = options.get("output", {}).get(name, {}).get("path")
    if path is None:
        return fallback
    return open(os.path.join(cwd, _expand(path, job)), "ab")


def _announce_uri(job: Job, broker: Broker, rundir: str) -> None:
    """Post the nested broker's URI as the ``user.uri`` memo once it listens,
    as a real nested instance does (``flux uri JOBID`` reads it)."""
    socket_path = os.path.join(rundir, "local-0")
    end = time.time() + 60
    while time.time() < end and job.state == "RUN":
        if os.path.exists(socket_path):
            with broker.lock:
                uri = f"ssh://{socket.gethostname()}{socket_path}"
                job.annotations = {"user": {"uri": uri}}
                broker._event(job, "memo", {"uri": uri})
            return
        time.sleep(0.02)


def _nested_broker(job: Job, broker: Broker, system: dict, command: list) -> list:
    """A nested instance: a child double broker that runs the initial program,
    with this double's own `flux run` standing in for the nested broker's."""
    tmpdir = tempfile.mkdtemp(prefix=f"fluxdouble-{job.id}-")
    script = os.path.join(tmpdir, "script")
    with open(script, "w") as handle:
        handle.write(system["files"]["script"]["data"])
    os.chmod(script, 0o700)
    rundir = os.path.join(tmpdir, "rundir")
    threading.Thread(target=_announce_uri, args=(job, broker, rundir), daemon=True).start()
    args = command[2:]
    while args and args[0].startswith("-"):  # broker options (-c conf, -S attr)
        args = args[1:]
    initial = [arg.replace("{{tmpdir}}", tmpdir) for arg in args]
    return [sys.executable, "-m", "fluxdouble", f"--rundir={rundir}",
            f"--test-size={max(1, job.nodes)}", f"--cores-per-node={broker.cores_per_node}",
            f"--gpus-per-node={broker.gpus_per_node}",
            f"--level={broker.level + 1}", f"--parent-uri={broker.uri}",
            f"--flux-version={broker.version.name}", "--", *initial]


def launch(job: Job, broker: Broker) -> subprocess.Popen:
    """Start the job's task as a process group, as a job shell would."""
    system = job.jobspec["attributes"]["system"]
    cwd = system.get("cwd") or "/"
    command = list(job.jobspec["tasks"][0]["command"])
    if command[:2] == ["flux", "broker"]:
        command = _nested_broker(job, broker, system, command)
    env = dict(system.get("environment") or {})
    env["PATH"] = os.path.join(HERE, "bin") + os.pathsep + env.get("PATH", os.defpath)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                      env.get("PYTHONPATH")]))
    env.update(FLUX_URI=broker.uri, FLUX_JOB_ID=str(job.id),
               FLUX_DOUBLE_PYTHON=sys.executable, **{versions.ENV: broker.version.name})
    stdout = _stream(job, "stdout", cwd, subprocess.DEVNULL)
    stderr = _stream(job, "stderr", cwd, stdout)
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True)


class _Handler(socketserver.StreamRequestHandler):
    """One connection: each request answered in turn; a streaming request (the job
    manager's journal) answered for as long as it lasts, from the broker's threads too."""

    def setup(self) -> None:
        super().setup()
        self._write_lock = threading.Lock()
        self._streams: dict[int, Listener] = {}

    def _write(self, reply: dict) -> None:
        with self._write_lock:
            self.wfile.write((json.dumps(reply) + "\n").encode())
            self.wfile.flush()

    def handle(self) -> None:
        broker = self.server.broker
        try:
            for line in self.rfile:
                request = json.loads(line)
                if request["topic"].endswith("-cancel") and request["topic"][:-7] in STREAMING:
                    self._cancel(request)  # a NORESPONSE request
                elif request["topic"] in STREAMING and request.get("streaming"):
                    self._stream(broker, request)
                else:
                    self._answer(broker, request)
        finally:
            for listener in self._streams.values():
                broker.unlisten(listener)

    def _answer(self, broker: Broker, request: dict) -> None:
        reply = {"matchtag": request["matchtag"]}
        try:
            reply["payload"] = broker.handle(request["topic"], request.get("payload"),
                                             request["cred"])
        except RequestError as err:
            reply.update(errnum=err.errnum, errstr=str(err))
        self._write(reply)

    def _stream(self, broker: Broker, request: dict) -> None:
        tag = request["matchtag"]
        listener = Listener(
            lambda payload: self._write({"matchtag": tag, "payload": payload}),
            request.get("payload") or {},
            lambda errnum, errstr: self._write({"matchtag": tag, "errnum": errnum,
                                                "errstr": errstr}),
            request["topic"])
        try:
            broker.listen(request["topic"], listener, request["cred"])
            self._streams[tag] = listener
        except RequestError as err:
            self._write({"matchtag": tag, "errnum": err.errnum, "errstr": str(err)})

    def _cancel(self, request: dict) -> None:
        tag = (request.get("payload") or {}).get("matchtag")
        listener = self._streams.pop(tag, None)
        if listener is not None:
            self.server.broker.unlisten(listener)
            self._write({"matchtag": tag, "errnum": errno.ENODATA, "errstr": "No data available"})


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(broker: Broker) -> _Server:
    path = os.path.join(broker.rundir, "local-0")
    server = _Server(path, _Handler)
    server.broker = broker
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
