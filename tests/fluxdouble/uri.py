"""The double's ``flux.uri``: ``FluxURIResolver().resolve(target)`` returning a
``JobURI`` with ``.local`` and ``.remote``, for the targets the contract tests
resolve against double brokers: ``local://``/``ssh://`` (returned as given),
``jobid:ID[/ID...]`` and bare ids, ``pid:PID``, and ``slurm:ID`` through
``scontrol listpids``. Results and error texts are those ``flux uri`` 0.88
gives; any other scheme (``lsf:`` among them) has no plugin here, and
``slurm:`` does not model Flux's squeue/srun fallback.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from urllib.parse import parse_qs, urlparse

import fluxdouble
from fluxdouble.jobid import JobID

RUNNING = 16  # job state RUN


class JobURI:
    """A broker URI and its local/remote forms."""

    def __init__(self, uri: str):
        parsed = urlparse(uri)
        if not parsed.scheme:
            raise ValueError(f"JobURI '{uri}' does not have a valid scheme")
        self.uri, self.scheme, self.netloc = uri, parsed.scheme, parsed.netloc
        self.path = re.sub("/+", "/", parsed.path)

    def _convert(self, same: str, other: str, form: str) -> str:
        if self.scheme == same:
            return self.uri
        if self.scheme == other:
            return form
        target = "remote" if same == "ssh" else "local"
        raise ValueError(f"Cannot convert JobURI with scheme {self.scheme} to {target}")

    @property
    def remote(self) -> str:
        return self._convert("ssh", "local", f"ssh://{socket.gethostname()}{self.path}")

    @property
    def local(self) -> str:
        return self._convert("local", "ssh", f"local://{self.path}")

    def __str__(self) -> str:
        return self.local if os.environ.get("FLUX_URI_RESOLVE_LOCAL") else self.uri


def _running_job_uri(broker_uri: str | None, text: str) -> str:
    """The URI a running job (a nested instance) published in its annotations."""
    request = {"id": int(JobID(text)), "attrs": ["state", "annotations"]}
    try:
        job = fluxdouble.Flux(broker_uri).rpc("job-list.list-id", request).get()["job"]
    except FileNotFoundError:
        raise ValueError(f"jobid {text} not found") from None
    if job["state"] != RUNNING:
        raise ValueError(f"jobid {text} is not running")
    found = job.get("annotations", {}).get("user", {}).get("uri")
    if not found:
        raise ValueError(f"URI not found for job {text}")
    return found


def _jobid(path: str) -> str:
    broker_uri = None  # FLUX_URI, else the double's default instance
    for text in [part for part in path.split("/") if part]:
        found = _running_job_uri(broker_uri, text)
        broker_uri = JobURI(found).local  # the next id is a job of that instance
    return found


def _pid(path: str) -> str:
    pid = path.split("/")[0]
    with open(f"/proc/{pid}/environ", encoding="utf-8") as handle:
        for entry in handle.read().split("\0"):
            if entry.startswith("FLUX_URI="):
                return entry.removeprefix("FLUX_URI=")
    raise ValueError(f"PID {pid} doesn't seem to have a FLUX_URI")


def _slurm(path: str) -> str:
    jobid = path.split("/")[0]
    listed = subprocess.run(["scontrol", "listpids", jobid], capture_output=True, text=True)
    # Lines "PID JOBID STEPID LOCALID GLOBALID": the step's first task holds FLUX_URI.
    pids = [words[0] for words in map(str.split, listed.stdout.splitlines())
            if len(words) > 3 and words[0].isdigit() and words[3] == "0"]
    for pid in pids:
        try:
            return JobURI(_pid(pid)).remote
        except (ValueError, OSError):
            continue
    raise ValueError(f"Slurm job {jobid} doesn't seem to have a FLUX_URI")


PLUGINS = {"jobid": _jobid, "pid": _pid, "slurm": _slurm}


class FluxURIResolver:
    """Resolves a target as ``flux uri TARGET`` does, for the schemes in PLUGINS."""

    def resolve(self, target: str) -> JobURI:
        scheme, sep, rest = target.partition(":")
        if not sep:
            scheme, rest = "jobid", target  # a bare job id, as flux uri takes it
        if scheme in ("local", "ssh"):
            return JobURI(target)
        if scheme not in PLUGINS:
            raise NotImplementedError(f"No plugin for URI scheme {scheme}")
        path, _, query = rest.partition("?")
        options = parse_qs(query, keep_blank_values=True)
        if "local" in options and "remote" in options:
            raise ValueError("Only one of 'local' or 'remote' is allowed")
        found = JobURI(PLUGINS[scheme](path))
        if "local" in options:
            return JobURI(found.local)
        return JobURI(found.remote) if "remote" in options else found
