"""Which broker a study talks to: ``flux_uri`` in the batch block, then the
``FLUX_URI`` environment variable, then the system instance; and how a URI that
names a job rather than a socket (``jobid:``, ``slurm:``, ``lsf:``, ``pid:``) is
resolved: by Flux's own resolver (the Broker that connects keeps the result)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from maestro_flux.broker import bindings
from maestro_flux.model.errors import BrokerError, MaestroFluxError
from maestro_flux.model.notices import Notices

LOGGER = logging.getLogger(__name__)

SYSTEM_INSTANCE = "the system instance (Flux's default URI)"


@dataclass(frozen=True)
class BrokerChoice:
    """A chosen URI and why it was chosen."""

    uri: str | None  # None: let Flux pick its default (the system instance)
    source: str

    def describe(self) -> str:
        return f"{self.uri or SYSTEM_INSTANCE} (from {self.source})"


def _uri_in_file(path: str, notices: Notices) -> str | None:
    try:
        with open(os.path.expanduser(path)) as handle:
            text = handle.read().strip()
    except OSError as err:
        notices.log_once(LOGGER, logging.WARNING, f"urifile:{path}:{err.errno}",
                 "maestro-flux: flux_uri_file %s: %s; using flux_uri or FLUX_URI", path,
                 err.strerror or err)
        return None
    return text.splitlines()[0].strip() if text else None


def choose_broker(flux_uri: str | None, environ: Mapping[str, str] | None = None,
                  uri_file: str | None = None, notices: Notices | None = None) -> BrokerChoice:
    """Apply the precedence: flux_uri_file (when it holds a URI), the batch block's
    flux_uri, then FLUX_URI, then the system instance."""
    environ = os.environ if environ is None else environ
    in_file = _uri_in_file(uri_file, notices or Notices()) if uri_file else None
    if in_file:
        return BrokerChoice(in_file, f"flux_uri_file {uri_file}")
    if flux_uri:
        return BrokerChoice(flux_uri, "batch block flux_uri")
    if environ.get("FLUX_URI"):
        return BrokerChoice(environ["FLUX_URI"], "FLUX_URI environment variable")
    return BrokerChoice(None, "default: neither flux_uri nor FLUX_URI is set")


# -- resolution ----------------------------------------------------------------
#: Schemes Flux connects to directly; every other form goes through Flux's resolver.
CONNECTABLE = ("local", "ssh")
#: What to check when a scheme's resolver fails (the commands it runs are Flux's).
RESOLVE_HINTS = {
    "jobid": "the job must be running in the enclosing instance (FLUX_URI, else the system "
             "instance); check it with 'flux jobs -a ID' and 'flux uri ID'",
    "slurm": "Flux runs 'scontrol listpids ID', else 'squeue -j ID' and 'srun --overlap "
             "--jobid=ID flux uri slurm:ID': run Maestro where Slurm's commands work and the "
             "allocation runs Flux, and check with 'flux uri --remote slurm:ID'",
    "lsf": "Flux runs csm_allocation_query (CSM_ALLOCATION_QUERY) and then "
           "'ssh HOST flux uri --remote lsf:ID?is_compute': check with "
           "'flux uri --remote lsf:ID'",
    "pid": "the process must run on this host, be yours and have FLUX_URI in its environment",
}


@dataclass(frozen=True)
class Resolution:
    """A URI as written and the URI connected to."""

    written: str
    uri: str
    how: str  # "as written", "flux-python's resolver", "the flux uri command"

    def describe(self) -> str:
        if self.uri == self.written:
            return self.uri
        return f"{self.written} -> {self.uri} (resolved by {self.how})"


def scheme_of(uri: str) -> str:
    """The resolver scheme: a bare id (``f3Bz``, ``123/456``) is a jobid."""
    head, sep, _ = uri.partition(":")
    return head if sep and re.fullmatch(r"[a-z][a-z0-9+.-]*", head) else "jobid"


def needs_resolving(uri: str) -> bool:
    return scheme_of(uri) not in CONNECTABLE


def one_line(text: object) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _with_command(uri: str) -> str:
    """``flux uri URI``, for schemes flux-python's resolver has no plugin for."""
    if shutil.which("flux") is None:
        raise NotImplementedError(f"flux-python has no resolver for '{scheme_of(uri)}:' "
                                  "and there is no 'flux' command to try")
    done = subprocess.run(["flux", "uri", uri], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ValueError(one_line(done.stderr) or f"flux uri exited {done.returncode}")
    return done.stdout.strip()


def prefer_local(uri: str, hostname: str | None = None) -> str:
    """``ssh://THIS-HOST/path`` as ``local:///path`` when the socket is here: Flux names
    nested instances by ssh:// URIs even when Maestro runs on the same node."""
    parts = urlparse(uri)
    here = hostname or socket.gethostname()
    if (parts.scheme == "ssh" and parts.hostname in (here, here.split(".")[0])
            and not parts.port and os.path.exists(parts.path)):
        return f"local://{parts.path}"
    return uri


def resolve(uri: str) -> Resolution:
    """The URI to connect to for ``uri`` (Flux's resolver runs for job-naming schemes).

    Raises:
        BrokerError: one line naming the URI, the resolver's reason and what to check.
    """
    if not needs_resolving(uri):
        return Resolution(uri, uri, "as written")
    LOGGER.info("maestro-flux: resolving %s", uri)
    try:
        try:
            target, how = bindings.resolve_uri(uri), "flux-python's resolver"
        except NotImplementedError:
            target, how = _with_command(uri), "the flux uri command"
    except MaestroFluxError:
        raise
    except Exception as err:  # plugins raise ValueError, OSError, CalledProcessError...
        hint = RESOLVE_HINTS.get(scheme_of(uri), "check the URI with 'flux uri URI'")
        raise BrokerError(f"cannot resolve flux_uri '{uri}': {one_line(err) or type(err).__name__}"
                          f"; {hint}") from None
    resolution = Resolution(uri, prefer_local(target.strip()), how)
    LOGGER.info("maestro-flux: %s", resolution.describe())
    return resolution

