"""The double's ``flux.uri``: JobURI and FluxURIResolver with the jobid, pid,
slurm and lsf schemes, resolving as flux-core 0.88's plugins do (same
commands, same errors), against double brokers."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import PurePath, PurePosixPath
from urllib.parse import parse_qs, urlparse

import fluxdouble
from fluxdouble.job import JobID

RUN = 16


class URI:
    def __init__(self, uri: str):
        self.uri = uri
        self.query_dict = {}
        for name, value in urlparse(uri)._asdict().items():
            setattr(self, name, value)
        if self.query:
            self.query_dict = parse_qs(self.query, keep_blank_values=True)


class JobURI(URI):
    def __init__(self, uri: str, remote_hostname: str | None = None):
        super().__init__(uri)
        if self.scheme == "":
            raise ValueError(f"JobURI '{uri}' does not have a valid scheme")
        self.path = re.sub("/+", "/", self.path)
        self.remote_hostname = remote_hostname

    @property
    def remote(self) -> str:
        if self.scheme == "ssh":
            return self.uri
        if self.scheme == "local":
            return f"ssh://{self.remote_hostname or platform.uname()[1]}{self.path}"
        raise ValueError(f"Cannot convert JobURI with scheme {self.scheme} to remote")

    @property
    def local(self) -> str:
        if self.scheme == "local":
            return self.uri
        if self.scheme == "ssh":
            return f"local://{self.path}"
        raise ValueError(f"Cannot convert JobURI with scheme {self.scheme} to local")

    def __str__(self) -> str:
        return self.local if os.environ.get("FLUX_URI_RESOLVE_LOCAL") else self.uri


class URIResolverURI(URI):
    def __init__(self, uri: str):
        super().__init__(uri.replace(":", ":FXX", 1))
        self.path = self.path.replace("FXX", "", 1)


# -- jobid --------------------------------------------------------------------
def _parent(handle: fluxdouble.Flux) -> str:
    if int(handle.attr_get("instance-level")) > 0:
        return handle.attr_get("parent-uri")
    return handle.attr_get("local-uri")


def _root(handle: fluxdouble.Flux) -> str:
    while int(handle.attr_get("instance-level")) > 0:
        handle = fluxdouble.Flux(_parent(handle))
    return handle.attr_get("local-uri")


def _job_uri(handle: fluxdouble.Flux, arg: str) -> str:
    jobid = JobID(arg)  # ValueError "... is not a valid Flux jobid", as real
    try:
        job = handle.rpc("job-list.list-id", {"id": int(jobid),
                                              "attrs": ["state", "annotations"]}).get()["job"]
    except FileNotFoundError as exc:
        raise ValueError(f"jobid {arg} not found") from exc
    if job["state"] != RUN:
        raise ValueError(f"jobid {arg} is not running")
    uri = job.get("annotations", {}).get("user", {}).get("uri")
    if not uri:
        raise ValueError(f"URI not found for job {arg}")
    return uri


def _resolve_jobid(uri: URI, handle: fluxdouble.Flux, force_local: bool,
                   hostname: str | None = None) -> str:
    jobids = list(PurePosixPath(uri.path).parts)
    if not jobids:
        return handle.attr_get("local-uri")
    arg = jobids.pop(0)
    if arg == "/":
        result = _root(handle)
    elif arg == "..":
        result = _parent(handle)
        if hostname:
            result = JobURI(result, remote_hostname=hostname).remote
    else:
        result = _job_uri(handle, arg)
        hostname = JobURI(result).netloc
    if jobids:
        if force_local:
            result = JobURI(result).local
        return _resolve_jobid(URIResolverURI("jobid:" + "/".join(jobids)),
                              fluxdouble.Flux(result), force_local, hostname)
    return result


def jobid_plugin(uri: URI) -> str:
    force_local = "local" in uri.query_dict or "FLUX_URI_RESOLVE_LOCAL" in os.environ
    return _resolve_jobid(uri, fluxdouble.Flux(), force_local)


# -- pid ----------------------------------------------------------------------
def pid_plugin(uri: URI) -> str:
    pid = PurePath(uri.path).parts[0]
    with open(f"/proc/{pid}/environ", encoding="utf-8") as envfile:
        for line in envfile.read().split("\0"):
            name, _, value = line.partition("=")
            if name == "FLUX_URI":
                return value
    raise ValueError(f"PID {pid} doesn't seem to have a FLUX_URI")


# -- slurm --------------------------------------------------------------------
def _first_host(nodelist: str) -> str:
    match = re.match(r"([^\[,]*)(?:\[(\d+))?", nodelist)
    return match.group(1) + (match.group(2) or "")


def _slurm_remote(jobid: str) -> str:
    try:
        nodelist = subprocess.check_output(["squeue", "-h", "-o", "%N", "-j", jobid],
                                           encoding="utf-8").strip()
    except subprocess.CalledProcessError:
        raise ValueError(f"unable to query nodelist for Slurm job {jobid}") from None
    if not nodelist:
        raise ValueError(f"empty nodelist returned for Slurm job {jobid}")
    env = {k: v for k, v in os.environ.items() if k != "FLUX_URI"}
    proc = subprocess.run(["srun", "--overlap", f"--jobid={jobid}", "-w", _first_host(nodelist),
                           "-n1", "-N1", "flux", "uri", f"slurm:{jobid}"],
                          capture_output=True, env=env)
    if proc.returncode != 0:
        raise ValueError(f"Unable to resolve Flux URI for Slurm job {jobid}")
    return proc.stdout.decode("utf-8").rstrip()


def slurm_plugin(uri: URI) -> str:
    jobid = PurePath(uri.path).parts[0]
    try:
        proc = subprocess.run(["scontrol", "listpids", jobid], capture_output=True)
        if proc.returncode != 0:
            raise OSError(2, "scontrol failed")
    except OSError:
        return _slurm_remote(jobid)
    pids = []
    for line in proc.stdout.decode("utf-8").splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[0].isdigit() and fields[3] == "0":
            pids.append(int(fields[0]))
    for pid in pids:
        try:
            return FluxURIResolver().resolve(f"pid:{pid}").remote
        except (ValueError, OSError):
            pass
    raise ValueError(f"Slurm job {jobid} doesn't seem to have a FLUX_URI")


# -- lsf ------------------------------------------------------------------------
def lsf_plugin(uri: URI) -> str:
    import yaml

    jobid = str(PurePath(uri.path).parts[0])
    csm = os.getenv("CSM_ALLOCATION_QUERY", "/opt/ibm/csm/bin/csm_allocation_query")
    try:
        out = subprocess.run([csm, "-j", jobid], stdout=subprocess.PIPE).stdout
        try:
            hostname = sorted(yaml.safe_load(out.decode("utf-8"))["compute_nodes"])[0]
        except Exception as exc:
            raise ValueError(f"Unable to find a compute node attached to job {jobid}") from exc
        flux_cmd = os.getenv("FLUX_SSH_RCMD", "flux")
        proc = subprocess.run([os.getenv("FLUX_SSH", "ssh"), hostname, flux_cmd, "uri",
                               "--remote", f"lsf:{jobid}?is_compute"],
                              stdout=subprocess.PIPE, check=True)
        return proc.stdout.decode("utf-8")
    except OSError as exc:
        raise ValueError(f"LSF Job {jobid} doesn't seem to have a FLUX_URI") from exc


PLUGINS = {
    "jobid": ("Get URI for a given Flux JOBID", jobid_plugin),
    "lsf": ("Get URI for a Flux instance launched under IBM Spectrum LSF", lsf_plugin),
    "pid": ("Get FLUX_URI for a given local PID", pid_plugin),
    "slurm": ("Get URI for a Flux instance launched under Slurm", slurm_plugin),
}


class FluxURIResolver:
    def __init__(self, pluginpath=None):
        self.resolvers = dict(PLUGINS)

    def resolve(self, uri: str) -> JobURI:
        scheme = URIResolverURI(uri).scheme
        if scheme == "":
            scheme, uri = "jobid", f"jobid:{uri}"
        if scheme in ("ssh", "local"):
            return JobURI(uri)
        if scheme not in self.resolvers:
            raise NotImplementedError(f"No plugin for URI scheme {scheme}")
        resolver_uri = URIResolverURI(uri)
        query = resolver_uri.query_dict
        if "local" in query and "remote" in query:
            raise ValueError("Only one of 'local' or 'remote' is allowed")
        result = JobURI(self.resolvers[scheme][1](resolver_uri))
        if "local" in query:
            result = JobURI(result.local)
        elif "remote" in query:
            result = JobURI(result.remote)
        return result

    def plugins(self) -> dict:
        return {name: text for name, (text, _) in self.resolvers.items()}
