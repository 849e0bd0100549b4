"""The double's ``flux.job``: the same names, arguments, results and errors, for
the flux-python version named by FLUXDOUBLE_VERSION (see versions.py).

``JobspecV1`` and ``job_list`` are looked up when used (module ``__getattr__``),
so one process can play several versions: the 0.61 factories only, 0.76's
extra factory keywords, or 0.88's ``from_batch``/``from_submit``/``apply_options``.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
from collections import deque
from typing import Any

from fluxdouble import FLUX_RPC_NORESPONSE, FLUX_RPC_STREAMING, Flux, Future, versions
from fluxdouble.cli import base as helpers
from fluxdouble.jobid import JobID

FLUX_JOB_DEBUG = 2
FLUX_JOB_WAITABLE = 4
FLUX_JOB_NOVALIDATE = 8
FLUX_USERID_UNKNOWN = 0xFFFFFFFF
#: What flux.job has that the double does not model, and why; test_double_versions
#: checks that maestro-flux uses none of it.
NOT_MODELLED = {
    "event_watch_async": "maestro-flux never watches a job's eventlog",
}


def _set_tree(tree: dict, key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if rest:
        _set_tree(tree.setdefault(head, {}), rest, value)
    else:
        tree[head] = value


def _resource(kind: str, count: int, children: list | None = None,
              exclusive: bool = False) -> dict:
    if not count > 0:
        raise ValueError("resource count must be > 0")
    res = {"type": kind, "count": count}
    if exclusive:
        res["exclusive"] = True
    if children:
        res["with"] = children
    return res


def _resources(num_tasks, cores_per_task, gpus_per_task, num_nodes, exclusive):
    if not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError("task count must be a integer >= 1")
    if not isinstance(cores_per_task, int) or cores_per_task < 1:
        raise ValueError("cores per task must be an integer >= 1")
    if gpus_per_task is not None and (not isinstance(gpus_per_task, int) or gpus_per_task < 0):
        raise ValueError("gpus per task must be an integer >= 0")
    if num_nodes is not None:
        if not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError("node count must be an integer >= 1 (if set)")
        if num_nodes > num_tasks:
            raise ValueError("node count must not be greater than task count")
    elif exclusive:
        raise ValueError("exclusive can only be set with a node count")
    children = [_resource("core", cores_per_task)]
    if gpus_per_task not in (None, 0):
        children.append(_resource("gpu", gpus_per_task))
    count = {"per_slot": 1}
    if num_nodes is not None:
        if num_tasks % num_nodes:
            count = {"total": num_tasks}
        slot = dict(_resource("slot", math.ceil(num_tasks / num_nodes), children), label="task")
        return _resource("node", num_nodes, [slot], exclusive), count
    return dict(_resource("slot", num_tasks, children), label="task"), count


class JobspecV1_61:
    """flux.job.JobspecV1 as flux-python 0.61 has it: the factories and setters."""

    def __init__(self, resources: list, tasks: list, attributes: dict, version: int = 1):
        self.jobspec = {"resources": resources, "tasks": tasks, "attributes": attributes,
                        "version": version}

    @classmethod
    def from_command(cls, command, num_tasks=1, cores_per_task=1, gpus_per_task=None,
                     num_nodes=None, exclusive=False):
        section, count = _resources(num_tasks, cores_per_task, gpus_per_task, num_nodes,
                                    exclusive)
        return cls([section], [{"command": list(command), "slot": "task", "count": count}],
                   {"system": {"duration": 0}})

    @classmethod
    def from_batch_command(cls, script, jobname, args=None, num_slots=1, cores_per_slot=1,
                           gpus_per_slot=None, num_nodes=None, broker_opts=None,
                           exclusive=False, conf=None):
        if not script.startswith("#!"):
            raise ValueError(f"{jobname} does not appear to start with '#!'")
        jobspec = cls.from_nest_command(["{{tmpdir}}/script", *(args or ())],
                                        num_slots=num_slots, cores_per_slot=cores_per_slot,
                                        gpus_per_slot=gpus_per_slot, num_nodes=num_nodes,
                                        broker_opts=broker_opts, exclusive=exclusive,
                                        conf=conf)
        jobspec.add_file("script", script, perms=0o700, encoding="utf-8")
        jobspec.setattr("system.job.name", jobname)
        return jobspec

    @classmethod
    def from_nest_command(cls, command, num_slots=1, cores_per_slot=1, gpus_per_slot=None,
                          num_nodes=None, broker_opts=None, exclusive=False, conf=None):
        jobspec = cls.from_command(cls._broker_command(command, broker_opts, conf),
                                   num_tasks=num_slots, cores_per_task=cores_per_slot,
                                   gpus_per_task=gpus_per_slot, num_nodes=num_nodes,
                                   exclusive=exclusive)
        return cls._nest(jobspec, conf)

    @staticmethod
    def _broker_command(command, broker_opts, conf) -> list:
        broker_opts = list(broker_opts or [])
        if conf is not None:
            broker_opts.append("-c{{tmpdir}}/conf.json")
        return ["flux", "broker", *broker_opts, *command]

    @classmethod
    def _nest(cls, jobspec, conf):
        jobspec.setattr_shell_option("per-resource.type", "node")
        jobspec.setattr_shell_option("mpi", "none")
        if conf is not None:
            jobspec.add_file("conf.json", conf)
        return jobspec

    def add_file(self, path, data, perms=0o600, encoding=None):
        files = self.jobspec["attributes"]["system"].setdefault("files", {})
        if isinstance(data, dict):
            files[path] = {"mode": perms | 0o100000, "data": data}
        elif encoding is None and "\n" not in data:
            files[path] = helpers.file_ref(data)  # a local path: read it, as flux does
        else:
            files[path] = {"mode": perms | 0o100000, "data": data,
                           "encoding": encoding or "utf-8"}

    def setattr(self, key, val):
        if not key.startswith("attributes."):
            if not key.startswith(("user.", "system.")):
                key = "system." + key
            key = "attributes." + key
        _set_tree(self.jobspec, key, val)

    def setattr_shell_option(self, key, val):
        self.setattr("system.shell.options." + key, val)

    def _system(self) -> dict:
        return self.jobspec["attributes"]["system"]

    @property
    def duration(self) -> float:
        return self._system().get("duration")

    @duration.setter
    def duration(self, value: Any) -> None:
        if isinstance(value, str):
            value = helpers.decode_duration(value)
        if value < 0 or math.isnan(value) or math.isinf(value):
            raise ValueError("duration must be a normal, finite value")
        self.setattr("system.duration", float(value))

    @property
    def cwd(self) -> str:
        return self._system().get("cwd")

    @cwd.setter
    def cwd(self, value: str) -> None:
        self.setattr("system.cwd", os.fspath(value))

    @property
    def environment(self) -> dict:
        return self._system().get("environment")

    @environment.setter
    def environment(self, value: dict) -> None:
        self.setattr("system.environment", value)

    @property
    def queue(self) -> str:
        return self._system().get("queue")

    @queue.setter
    def queue(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("queue must be a string")
        self.setattr("system.queue", value)

    def _io(self, iotype: str, stream: str, path: str) -> None:
        self.setattr_shell_option(f"{iotype}.{stream}.type", "file")
        self.setattr_shell_option(f"{iotype}.{stream}.path", os.fspath(path))

    stdin = property(lambda self: None, lambda self, path: self._io("input", "stdin", path))
    stdout = property(lambda self: None, lambda self, path: self._io("output", "stdout", path))
    stderr = property(lambda self: None, lambda self, path: self._io("output", "stderr", path))

    def dumps(self, **kwargs: Any) -> str:
        return json.dumps(self.jobspec, ensure_ascii=False, **kwargs)


class JobspecV1_76(JobspecV1_61):
    """0.76: the factories take the common job keywords; nested instances get
    exit-timeout=none; input/output/error are the I/O setters' names."""

    input, output, error = JobspecV1_61.stdin, JobspecV1_61.stdout, JobspecV1_61.stderr

    @classmethod
    def from_command(cls, command, num_tasks=1, cores_per_task=1, gpus_per_task=None,
                     num_nodes=None, exclusive=False, duration=None, environment=None,
                     env_expand=None, cwd=None, rlimits=None, name=None, input=None,
                     output=None, error=None, label_io=False, unbuffered=False, queue=None,
                     bank=None):
        jobspec = super().from_command(command, num_tasks, cores_per_task, gpus_per_task,
                                       num_nodes, exclusive)
        if duration is not None:
            jobspec.duration = duration
        jobspec.environment = dict(os.environ) if environment is None else environment
        if env_expand:
            jobspec.setattr_shell_option("env-expand", env_expand)
        if cwd is not None:
            jobspec.cwd = cwd
        if rlimits is not None:
            jobspec.setattr_shell_option("rlimit", rlimits)
        if name is not None:
            jobspec.setattr("job.name", name)
        if input is not None:
            jobspec.input = input
        for stream, path in (("output", output), ("error", error)):
            if path is not None and path not in ("none", "kvs"):
                setattr(jobspec, stream, path)
                if label_io:
                    jobspec.setattr_shell_option(f"output.std{stream[:3]}.label", True)
        if unbuffered:
            jobspec.setattr_shell_option("output.stdout.buffer.type", "none")
            jobspec.setattr_shell_option("output.stderr.buffer.type", "none")
        if queue is not None:
            jobspec.setattr("queue", queue)
        if bank is not None:
            jobspec.setattr("bank", bank)
        return jobspec

    @classmethod
    def from_batch_command(cls, script, jobname, args=None, num_slots=1, cores_per_slot=1,
                           gpus_per_slot=None, num_nodes=None, broker_opts=None,
                           exclusive=False, conf=None, **kwargs):
        if not script.startswith("#!"):
            raise ValueError(f"{jobname} does not appear to start with '#!'")
        jobspec = cls.from_nest_command(["{{tmpdir}}/script", *(args or ())],
                                        num_slots=num_slots, cores_per_slot=cores_per_slot,
                                        gpus_per_slot=gpus_per_slot, num_nodes=num_nodes,
                                        broker_opts=broker_opts, exclusive=exclusive,
                                        conf=conf, name=jobname, **kwargs)
        jobspec.add_file("script", script, perms=0o700, encoding="utf-8")
        return jobspec

    @classmethod
    def from_nest_command(cls, command, num_slots=1, cores_per_slot=1, gpus_per_slot=None,
                          num_nodes=None, broker_opts=None, exclusive=False, conf=None,
                          **kwargs):
        jobspec = cls.from_command(cls._broker_command(command, broker_opts, conf),
                                   num_tasks=num_slots, cores_per_task=cores_per_slot,
                                   gpus_per_task=gpus_per_slot, num_nodes=num_nodes,
                                   exclusive=exclusive, **kwargs)
        jobspec.setattr_shell_option("exit-timeout", "none")
        return cls._nest(jobspec, conf)

    def add_file(self, path, data, perms=None, encoding=None):
        super().add_file(path, data, 0o600 if perms is None else perms, encoding)


class JobspecV1_88(JobspecV1_76):
    """0.88: from_batch, from_submit and apply_options."""

    @classmethod
    def from_submit(cls, command, *, ntasks=1, nodes=None, cores_per_task=1,
                    gpus_per_task=None, exclusive=False, name=None, queue=None, bank=None,
                    cwd=None, output=None, error=None, input=None, label_io=False,
                    unbuffered=False, **kwargs):
        jobspec = cls.from_command(command, num_tasks=ntasks, cores_per_task=cores_per_task,
                                   gpus_per_task=gpus_per_task, num_nodes=nodes,
                                   exclusive=exclusive, name=name, queue=queue, bank=bank,
                                   cwd=cwd or os.getcwd(), output=output, error=error,
                                   input=input, label_io=label_io, unbuffered=unbuffered)
        return jobspec.apply_options(prog="submit", env=kwargs.pop("env", []),
                                     rlimit=kwargs.pop("rlimit", []), **kwargs)

    @classmethod
    def from_batch(cls, script=None, *, content=None, nslots=None, nodes=None,
                   cores_per_slot=1, gpus_per_slot=None, exclusive=False, broker_opts=None,
                   conf=None, wrap=False, name=None, queue=None, bank=None, cwd=None,
                   output=None, error=None, input=None, label_io=False, unbuffered=False,
                   **kwargs):
        if (script is None) == (content is None):
            raise TypeError("from_batch() accepts 'script' or 'content', not both")
        if content is None:
            name = name or os.path.basename(script)
            with open(script, encoding="utf-8") as handle:
                content = handle.read()
        if wrap and not content.startswith("#!"):
            content = "#!/bin/sh\n" + content
        if nslots is None:
            nslots, exclusive = (nodes, True) if nodes is not None else (1, exclusive)
        jobspec = cls.from_batch_command(
            content, name or "batch", num_slots=nslots, cores_per_slot=cores_per_slot,
            gpus_per_slot=gpus_per_slot, num_nodes=nodes, broker_opts=broker_opts,
            exclusive=exclusive, conf=conf, cwd=cwd or os.getcwd(),
            output=output or "flux-{{id}}.out", error=error, input=input, label_io=label_io,
            unbuffered=unbuffered, queue=queue, bank=bank)
        return jobspec.apply_options(prog="batch", env=kwargs.pop("env", []),
                                     rlimit=kwargs.pop("rlimit", []), **kwargs)

    def apply_options(self, args=None, *, prog=None, _preinit=True, env=None, rlimit=None,
                      signal=None, taskmap=None, dependency=None, requires=None,
                      shell_options=None, time_limit=None, attributes=None, add_file=None,
                      **kwargs):
        """Options applied as flux's apply_options does (the double has no CLI plugins)."""
        if kwargs:
            raise TypeError("apply_options() got unexpected keyword argument(s): "
                            + ", ".join(repr(k) for k in sorted(kwargs)))
        given = {"env": env, "rlimit": rlimit, "signal": signal, "taskmap": taskmap,
                 "dependency": dependency, "requires": requires,
                 "shell_options": shell_options, "time_limit": time_limit,
                 "attributes": attributes, "add_file": add_file}
        merged = argparse.Namespace(**{**dict.fromkeys(given), **vars(args or argparse.Namespace()),
                                       **{k: v for k, v in given.items() if v is not None}})
        if env is not None or args is not None:
            self.environment, expand = helpers.get_filtered_environment(merged.env)
            if expand:
                self.setattr_shell_option("env-expand", expand)
        if rlimit is not None or args is not None:
            limits = helpers.get_filtered_rlimits(merged.rlimit)
            if limits:
                self.setattr_shell_option("rlimit", limits)
        if merged.signal:
            self.setattr_shell_option("signal", helpers.parse_signal_option(merged.signal))
        if merged.taskmap is not None:
            self.setattr_shell_option("taskmap", helpers.dependency_array_create(
                [merged.taskmap])[0])
        if merged.dependency is not None:
            self.setattr("system.dependencies",
                         helpers.dependency_array_create(merged.dependency))
        if merged.requires is not None:
            self.setattr("system.constraints",
                         helpers.MiniConstraintParser().parse(" ".join(merged.requires)))
        for key, value in (merged.shell_options or {}).items():
            self.setattr_shell_option(key, value)
        if merged.time_limit is not None:
            self.duration = helpers.decode_duration(merged.time_limit)
        for key, value in (merged.attributes or {}).items():
            if not key.startswith((".", "attributes.", "user.", "system.")):
                key = "system." + key
            elif key.startswith("."):
                key = "attributes" + key
            self.setattr(key, value)
        for arg in merged.add_file or []:
            helpers.add_file(self, arg)
        return self


JOBSPEC_API = {61: JobspecV1_61, 76: JobspecV1_76, 88: JobspecV1_88}


class SubmitFuture(Future):
    def get_id(self) -> JobID:
        return JobID(self.get()["id"])


class JobListRPC(Future):
    def get_jobs(self) -> list:
        return self.get()["jobs"]


def _retag(future: Future, cls: type) -> Future:
    future.__class__ = cls
    return future


def submit_async(flux_handle, jobspec, urgency=16, waitable=False, debug=False,
                 pre_signed=False, novalidate=False) -> SubmitFuture:
    text = jobspec if isinstance(jobspec, str) else jobspec.dumps()
    flags = ((FLUX_JOB_WAITABLE if waitable else 0) | (FLUX_JOB_DEBUG if debug else 0)
             | (FLUX_JOB_NOVALIDATE if novalidate else 0))
    future = flux_handle.rpc("job-ingest.submit", {"J": text, "urgency": urgency,
                                                   "flags": flags})
    return _retag(future, SubmitFuture)


def submit(flux_handle, jobspec, urgency=16, waitable=False, debug=False,
           pre_signed=False) -> JobID:
    return submit_async(flux_handle, jobspec, urgency, waitable, debug, pre_signed).get_id()


def _job_list(handle: Flux, max_entries: int, attrs: list, userid: int, states: int,
              results: int, since: float, constraint: dict | None) -> JobListRPC:
    """The request flux.job.job_list sends: one RFC 31 constraint (FLUX_USERID_UNKNOWN
    is every user's jobs)."""
    terms = [constraint] if constraint is not None else []
    if userid != FLUX_USERID_UNKNOWN:
        terms.append({"userid": [userid]})
    if states and results:
        terms.append({"or": [{"states": [states]}, {"results": [results]}]})
    elif states or results:
        terms.append({"states" if states else "results": [states or results]})
    payload = {"max_entries": int(max_entries), "attrs": attrs, "since": since,
               "constraint": {"and": terms}}
    return _retag(handle.rpc("job-list.list", payload), JobListRPC)


def job_list_61(flux_handle, max_entries=1000, attrs=["all"], userid=os.getuid(),  # noqa: B006,B008
                states=0, results=0, since=0.0, name=None, queue=None):
    return _job_list(flux_handle, max_entries, attrs, userid, states, results, since, None)


def job_list_76(flux_handle, max_entries=1000, attrs=["all"], userid=os.getuid(),  # noqa: B006,B008
                states=0, results=0, since=0.0, name=None, queue=None, constraint=None):
    return _job_list(flux_handle, max_entries, attrs, userid, states, results, since,
                     constraint)


def job_list_id(flux_handle, jobid, attrs=["all"]):  # noqa: B006
    return flux_handle.rpc("job-list.list-id", {"id": int(JobID(jobid)), "attrs": attrs})


class _JournalEvent:
    """One event of the job manager's journal (flux.job.journal.JournalEvent)."""

    def __init__(self, jobid: int, event: dict, jobspec: Any = None, R: Any = None):
        self.jobid, self.jobspec, self.R = jobid, jobspec, R
        self.name = event.get("name")
        self.timestamp = event.get("timestamp", 0.0)
        self.context = event.get("context", {})

    def is_empty(self) -> bool:
        return self.name is None


class _JournalConsumer:
    """flux.job.JournalConsumer (0.68 on): the job manager's journal, one streaming
    request; ``poll`` gives one event at a time (TimeoutError after ``timeout``, None
    once stopped), history first (time ordered) when ``full``."""

    def __init__(self, flux_handle, full=True, since=0.0, include_sentinel=False):
        self.handle, self.full, self.since = flux_handle, full, since
        self.include_sentinel, self.rpc = include_sentinel, None
        self.backlog: deque = deque()
        self.processing_inactive = full

    @property
    def request_payload(self) -> dict:
        return {"full": self.full}

    def start(self) -> _JournalConsumer:
        self.rpc = self.handle.rpc("job-manager.events-journal", self.request_payload, 0,
                                   FLUX_RPC_STREAMING)
        return self

    def stop(self) -> None:
        self.handle.rpc("job-manager.events-journal-cancel", {"matchtag": self.rpc.matchtag},
                        0, FLUX_RPC_NORESPONSE)

    def _enqueue(self, resp: dict | None) -> None:
        if resp is None:
            self.backlog.append(None)
            return
        for entry in resp["events"]:
            event = _JournalEvent(resp.get("id"), entry)
            if event.timestamp > self.since:
                self.backlog.append(event)

    def poll(self, timeout: float = -1.0) -> _JournalEvent | None:
        if self.rpc is None:
            raise RuntimeError("poll() called before start()")
        while self.processing_inactive:
            resp = self.rpc.wait_for(timeout).get()
            if not resp["events"]:
                self.processing_inactive = False
                self.backlog = deque(sorted(self.backlog, key=lambda e: e.timestamp))
            else:
                self._enqueue(resp)
            self.rpc.reset()
        while not self.backlog:
            try:
                resp = self.rpc.wait_for(timeout).get()
            except OSError as exc:
                if exc.errno != errno.ENODATA:
                    raise
                resp = None
            self._enqueue(resp)
            self.rpc.reset()
        return self.backlog.popleft()


def __getattr__(name: str) -> Any:
    """The names whose form depends on the version being played."""
    version = versions.get()
    if name == "JobspecV1":
        return JOBSPEC_API[version.jobspec_api]
    if name == "job_list":
        return job_list_76 if version.job_list_constraint else job_list_61
    if name in ("JournalConsumer", "JournalEvent") and version.journal_consumer:
        return _JOURNAL[name]
    raise AttributeError(f"module 'fluxdouble.job' has no attribute '{name}'")


#: Exposed (module __getattr__) only by the versions whose bindings have them.
_JOURNAL = {"JournalConsumer": _JournalConsumer, "JournalEvent": _JournalEvent}


def cancel_async(flux_handle: Flux, jobid: JobID | int, reason: str | None = None) -> Future:
    return flux_handle.rpc("job-manager.raise", {"id": int(JobID(jobid)), "type": "cancel",
                                            "severity": 0, "note": reason or ""})


def cancel(handle: Flux, jobid: Any, reason: str | None = None) -> None:
    cancel_async(handle, jobid, reason).get()


def kill_async(handle: Flux, jobid: Any, signum: int | None = None) -> Future:
    return handle.rpc("job-manager.kill", {"id": int(JobID(jobid)), "signum": signum or 15})


def kill(handle: Flux, jobid: Any, signum: int | None = None) -> None:
    kill_async(handle, jobid, signum).get()
