"""Reaching a broker over ``ssh://`` with only the flux client installed here.

Flux's ssh connector runs ``$FLUX_SSH [-p PORT] [USER@]HOST ... ${FLUX_SSH_RCMD:-flux}
relay /PATH`` and talks to the broker through that pipe. It takes no ssh options,
so to bound the time a connection attempt can take (an unreachable node, a
password prompt in a daemonized conductor) we point FLUX_SSH, for the duration
of the connect call only, at a two-line wrapper that adds them to the user's
own ssh (FLUX_SSH if set, else ``ssh``). FLUX_SSH_RCMD and LD_LIBRARY_PATH are
left for the connector, which forwards them.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from urllib.parse import urlparse

DEFAULT_CONNECT_TIMEOUT = 5.0
#: Added to every ssh the connector starts. BatchMode: never prompt (the conductor has
#: no terminal). ServerAlive*: a node that vanishes mid-study ends the connection in
#: about three timeouts, so requests fail instead of hanging.
SSH_OPTIONS = ("-o", "ConnectTimeout={t}", "-o", "BatchMode=yes",
               "-o", "ServerAliveInterval={t}", "-o", "ServerAliveCountMax=3")
REMOTE_NEEDS = ("the remote host needs a 'flux' with the 'relay' subcommand on the PATH "
                "that ssh gives it, or named by FLUX_SSH_RCMD, and key-based ssh that "
                "asks for no password")


def is_ssh(uri: str | None) -> bool:
    return bool(uri) and uri.startswith("ssh://")


def ssh_host(uri: str) -> str:
    """``[user@]host[:port]`` of an ssh:// URI, for messages."""
    return urlparse(uri).netloc


def ssh_program() -> str:
    """The ssh Flux's connector runs: FLUX_SSH if set, else ``ssh``."""
    return os.environ.get("FLUX_SSH") or shutil.which("ssh") or "ssh"


def whole_seconds(timeout: float) -> int:
    """ssh's ConnectTimeout takes whole seconds."""
    return max(1, math.ceil(timeout))


def ssh_wrapper(ssh: str, seconds: int) -> str:
    """Write a private executable that runs ``ssh`` with SSH_OPTIONS; its path.

    The caller (the Broker) keeps the path; the folder goes when the process ends.
    """
    folder = tempfile.mkdtemp(prefix="maestro-flux-ssh-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, "ssh")
    options = " ".join(shlex.quote(o.format(t=seconds)) for o in SSH_OPTIONS)
    with open(path, "w") as handle:
        handle.write(f'#!/bin/sh\nexec {shlex.quote(ssh)} {options} "$@"\n')
    os.chmod(path, 0o700)
    return path


@contextlib.contextmanager
def flux_ssh(wrapper: str) -> Iterator[None]:
    """FLUX_SSH set to ``wrapper`` while a handle is opened.

    The environment is the ssh connector's only interface (it reads FLUX_SSH when
    it starts ssh), so this is the one place maestro-flux sets a variable in its
    own process, and only for the duration of the connect call.
    """
    before = os.environ.get("FLUX_SSH")
    os.environ["FLUX_SSH"] = wrapper
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FLUX_SSH", None)
        else:
            os.environ["FLUX_SSH"] = before


def unreachable_hint(uri: str, reason: str, timeout: float) -> str:
    """What to do when connecting to ``uri`` failed with ``reason``."""
    if not is_ssh(uri):
        return ("is the instance still running? Find its URI again with 'flux uri "
                "--remote slurm:ID' (or lsf:ID, or a Flux job id)")
    host = urlparse(uri)
    probe = f"ssh {'-p ' + str(host.port) + ' ' if host.port else ''}{host.hostname} true"
    if "timed out" in reason.lower():
        return (f"no answer from {host.hostname} within connect_timeout={timeout:g}s: is "
                f"the node up, and reachable from here ('{probe}')?")
    if "relay" in reason or "not found" in reason or "No such file" in reason:
        return f"{REMOTE_NEEDS}; and the broker socket must still exist there"
    return f"check that '{probe}' works without a prompt; {REMOTE_NEEDS}"
