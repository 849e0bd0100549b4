"""The double's ``flux.job``: the same names, arguments, results and errors."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from fluxdouble import Flux, Future, options
from maestro_flux.model.jobids import f58_encode, parse_jobid

FLUX_JOB_WAITABLE = 4


class JobID(int):
    """A job id that parses and prints the forms flux.job.JobID does (not words)."""

    def __new__(cls, value: Any) -> JobID:
        return super().__new__(cls, parse_jobid(value))

    @property
    def f58(self) -> str:
        return f58_encode(int(self), "\u0192")

    @property
    def f58plain(self) -> str:
        return f58_encode(int(self))

    @property
    def dec(self) -> str:
        return str(int(self))

    @property
    def hex(self) -> str:
        return f"{int(self):#x}"

    @property
    def dothex(self) -> str:
        text = f"{int(self):016x}"
        return ".".join(text[i:i + 4] for i in range(0, 16, 4))

    @property
    def kvs(self) -> str:
        return "job." + self.dothex

    def __str__(self) -> str:
        return self.f58

    def __repr__(self) -> str:
        return f"JobID({int(self)})"


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


class JobspecV1:
    """The subset of flux.job.JobspecV1 maestro-flux uses, building the same dicts."""

    def __init__(self, resources: list, tasks: list, attributes: dict, version: int = 1):
        self.jobspec = {"resources": resources, "tasks": tasks, "attributes": attributes,
                        "version": version}

    @classmethod
    def from_command(cls, command, num_tasks=1, cores_per_task=1, gpus_per_task=None,
                     num_nodes=None, exclusive=False, environment=None, **extra):
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
            slot = dict(_resource("slot", math.ceil(num_tasks / num_nodes), children),
                        label="task")
            section = _resource("node", num_nodes, [slot], exclusive)
        else:
            section = dict(_resource("slot", num_tasks, children), label="task")
        jobspec = cls([section], [{"command": list(command), "slot": "task", "count": count}],
                      {"system": {"duration": 0}})
        jobspec.environment = dict(os.environ) if environment is None else environment
        for key, value in extra.items():
            if value is not None:
                setattr(jobspec, key, value)
        return jobspec

    @classmethod
    def from_nest_command(cls, command, num_slots=1, cores_per_slot=1, gpus_per_slot=None,
                          num_nodes=None, broker_opts=None, exclusive=False, conf=None,
                          **kwargs):
        broker_opts = list(broker_opts or [])
        if conf is not None:
            broker_opts.append("-c{{tmpdir}}/conf.json")
        name = kwargs.pop("name", None)
        jobspec = cls.from_command(["flux", "broker", *broker_opts, *command],
                                   num_tasks=num_slots, cores_per_task=cores_per_slot,
                                   gpus_per_task=gpus_per_slot, num_nodes=num_nodes,
                                   exclusive=exclusive, **kwargs)
        if name is not None:
            jobspec.setattr("job.name", name)
        jobspec.setattr_shell_option("per-resource.type", "node")
        jobspec.setattr_shell_option("mpi", "none")
        jobspec.setattr_shell_option("exit-timeout", "none")
        if conf is not None:
            jobspec.add_file("conf.json", conf)
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
    def from_batch(cls, script=None, *, content=None, nslots=None, nodes=None,
                   cores_per_slot=1, gpus_per_slot=None, exclusive=False, broker_opts=None,
                   conf=None, wrap=False, name=None, queue=None, bank=None, cwd=None,
                   output=None, error=None, **kwargs):
        if (script is None) == (content is None):
            raise TypeError("from_batch() accepts 'script' or 'content', not both")
        if nslots is None:
            nslots, exclusive = (nodes, True) if nodes is not None else (1, exclusive)
        jobspec = cls.from_batch_command(
            content, name or "batch", num_slots=nslots, cores_per_slot=cores_per_slot,
            gpus_per_slot=gpus_per_slot, num_nodes=nodes, broker_opts=broker_opts,
            exclusive=exclusive, conf=conf)
        jobspec.cwd = cwd or os.getcwd()
        jobspec.stdout = output or "flux-{{id}}.out"
        if error:
            jobspec.stderr = error
        if queue:
            jobspec.queue = queue
        if bank:
            jobspec.setattr("system.bank", bank)
        return jobspec.apply_options(env=kwargs.pop("env", []),
                                     rlimit=kwargs.pop("rlimit", []), **kwargs)

    def apply_options(self, *, env=None, rlimit=None, signal=None, time_limit=None,
                      dependency=None, requires=None, shell_options=None, attributes=None,
                      add_file=None):
        """The options maestro-flux passes, applied as flux's apply_options does."""
        if env is not None:
            self.environment = options.filtered_environment(env)
        if rlimit is not None:
            limits = options.filtered_rlimits(rlimit)
            if limits:
                self.setattr_shell_option("rlimit", limits)
        if signal:
            self.setattr_shell_option("signal", options.signal_option(signal))
        if dependency is not None:
            self.setattr("system.dependencies", [options.dependency(u) for u in dependency])
        if requires is not None:
            self.setattr("system.constraints", options.constraint(" ".join(requires)))
        for key, value in (shell_options or {}).items():
            self.setattr_shell_option(key, value)
        if time_limit is not None:
            self.duration = options.duration(time_limit)
        for key, value in (attributes or {}).items():
            if not key.startswith((".", "attributes.", "user.", "system.")):
                key = "system." + key
            elif key.startswith("."):
                key = "attributes" + key
            self.setattr(key, value)
        for arg in add_file or []:
            options.add_file(self, arg)
        return self

    def add_file(self, path: str, data: Any, perms: int | None = None, encoding=None) -> None:
        files = self.jobspec["attributes"]["system"].setdefault("files", {})
        if isinstance(data, dict):
            files[path] = {"mode": (perms or 0o600) | 0o100000, "data": data}
        elif encoding is None and "\n" not in data:
            files[path] = options.file_ref(data)  # a local path: read it, as flux does
        else:
            files[path] = {"mode": (perms or 0o600) | 0o100000, "data": data,
                           "encoding": encoding or "utf-8"}

    def setattr(self, key: str, value: Any) -> None:
        if not key.startswith("attributes."):
            if not key.startswith(("user.", "system.")):
                key = "system." + key
            key = "attributes." + key
        _set_tree(self.jobspec, key, value)

    def setattr_shell_option(self, key: str, value: Any) -> None:
        self.setattr("system.shell.options." + key, value)

    def _system(self) -> dict:
        return self.jobspec["attributes"]["system"]

    @property
    def duration(self) -> float:
        return self._system().get("duration")

    @duration.setter
    def duration(self, value: Any) -> None:
        if isinstance(value, str):
            raise TypeError("the double takes durations in seconds only")
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

    def _io(self, stream: str, path: str) -> None:
        self.setattr_shell_option(f"output.{stream}.type", "file")
        self.setattr_shell_option(f"output.{stream}.path", os.fspath(path))

    stdout = property(lambda self: None, lambda self, path: self._io("stdout", path))
    stderr = property(lambda self: None, lambda self, path: self._io("stderr", path))
    output = stdout
    error = stderr

    def dumps(self, **kwargs: Any) -> str:
        return json.dumps(self.jobspec, ensure_ascii=False, **kwargs)


class SubmitFuture(Future):
    def get_id(self) -> JobID:
        return JobID(self.get()["id"])


class JobListRPC(Future):
    def get_jobs(self) -> list:
        return self.get()["jobs"]


def _retag(future: Future, cls: type) -> Future:
    future.__class__ = cls
    return future


def submit_async(handle: Flux, jobspec: Any, urgency: int = 16, waitable: bool = False,
                 debug: bool = False, pre_signed: bool = False,
                 novalidate: bool = False) -> SubmitFuture:
    text = jobspec if isinstance(jobspec, str) else jobspec.dumps()
    flags = FLUX_JOB_WAITABLE if waitable else 0
    future = handle.rpc("job-ingest.submit", {"J": text, "urgency": urgency, "flags": flags})
    return _retag(future, SubmitFuture)


def submit(handle: Flux, jobspec: Any, urgency: int = 16, waitable: bool = False,
           **kwargs: Any) -> JobID:
    return submit_async(handle, jobspec, urgency, waitable, **kwargs).get_id()


def job_list(handle: Flux, max_entries: int = 1000, attrs: list | None = None,
             userid: int | None = None, states: int = 0, results: int = 0,
             since: float = 0.0, **kwargs: Any) -> JobListRPC:
    payload = {"max_entries": int(max_entries), "attrs": attrs or ["all"], "since": since,
               "constraint": {"and": [{"userid": [os.getuid() if userid is None else userid]}]}}
    return _retag(handle.rpc("job-list.list", payload), JobListRPC)


def cancel_async(handle: Flux, jobid: Any, reason: str | None = None) -> Future:
    return handle.rpc("job-manager.raise", {"id": int(JobID(jobid)), "type": "cancel",
                                            "severity": 0, "note": reason or ""})


def cancel(handle: Flux, jobid: Any, reason: str | None = None) -> None:
    cancel_async(handle, jobid, reason).get()


def kill_async(handle: Flux, jobid: Any, signum: int | None = None) -> Future:
    return handle.rpc("job-manager.kill", {"id": int(JobID(jobid)), "signum": signum or 15})


def kill(handle: Flux, jobid: Any, signum: int | None = None) -> None:
    kill_async(handle, jobid, signum).get()
