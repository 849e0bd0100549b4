"""A test double of the Flux Python bindings' API subset that maestro-flux uses.

``fluxdouble.Flux(uri)`` connects to a double broker (``python -m fluxdouble``)
over a Unix socket at a ``local://`` URI, and ``fluxdouble.job`` mirrors
``flux.job``: JobspecV1, JobID, submit/submit_async, job_list, cancel/
cancel_async, kill. The same contract tests run against it and against a real
broker; see tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

DEFAULT_URI = "local:///run/flux/local"
#: flux.constants.FLUX_RPC_STREAMING, FLUX_RPC_NORESPONSE
FLUX_RPC_STREAMING, FLUX_RPC_NORESPONSE = 2, 1


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the flux-python version being played
        from fluxdouble import versions

        return versions.get().name
    raise AttributeError(f"module 'fluxdouble' has no attribute '{name}'")

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")
SSH_HINT = ("Unable to establish clean ssh connection.\n"
            "Hint: Check that shell init files do not write to stdout when non-interactive.")


def _connect_error(text: str) -> OSError:
    return OSError(errno.ENOENT, f"Unable to connect to Flux: {text}")


def connect_socket(path: str) -> socket.socket:
    """A connection to the broker socket at ``path``, with the local connector's errors."""
    if not os.path.exists(path):
        raise _connect_error(f"broker socket {path} was not found")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        raise OSError(err.errno, f"Unable to connect to Flux: {err.strerror}") from None
    return sock


class Future:
    """An RPC in flight: ``get()`` waits for it, ``then()`` runs a callback in reactor_run.

    A streaming RPC (``FLUX_RPC_STREAMING``) gets one response after another: each
    ``get()`` takes the next, ``wait_for(timeout)`` waits for one (TimeoutError, as
    flux.Future's, when none comes), ``reset()`` readies the future for the next."""

    def __init__(self, handle: Flux, matchtag: int):
        self.handle = handle
        self.matchtag = matchtag
        self._callback: tuple[Callable, tuple] | None = None
        self._current: dict | None = None  # the response get() returns until reset()

    def _reply(self) -> dict:
        if self._current is None:
            self._current = self.handle._wait_for(self.matchtag)
        return self._current

    def get(self) -> Any:
        reply = self._reply()
        if "errnum" in reply:
            raise OSError(reply["errnum"], reply["errstr"])
        return reply["payload"]

    def wait_for(self, timeout: float = -1.0) -> Future:
        if self._current is None:
            self.handle._wait_for(self.matchtag, None if timeout < 0 else timeout, keep=True)
        return self

    def reset(self) -> None:
        """Ready for the next response of a streaming RPC."""
        self._current = None

    def then(self, callback: Callable, *args: Any) -> Future:
        self._callback = (callback, args)
        self.handle._pending_callbacks[self.matchtag] = self
        return self


def ssh_command(rest: str) -> list[str]:
    """The command flux-core's ssh connector runs for ``ssh://REST``:
    ``$FLUX_SSH [-p port] [user@]host [env] [PATH=...] [LD_LIBRARY_PATH=...]
    ${FLUX_SSH_RCMD:-flux} relay /path``."""
    parts = urlparse("ssh://" + rest)
    if not parts.hostname or not parts.path or parts.query or parts.fragment:
        raise OSError(errno.EINVAL, "Invalid argument")
    argv = [os.environ.get("FLUX_SSH", "ssh")]
    if parts.port:
        argv += ["-p", str(parts.port)]
    argv.append(f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname)
    flux_cmd = os.environ.get("FLUX_SSH_RCMD")
    ld_path = os.environ.get("LD_LIBRARY_PATH")
    if ld_path or not flux_cmd:
        argv.append("env")
    if not flux_cmd:
        # the double's own installation plays the part of the local flux's bindir
        argv.append(f"PATH={os.path.dirname(parts.path)}/bin:{BIN}:/bin:/usr/bin")
        flux_cmd = "flux"
    if ld_path:
        argv.append(f"LD_LIBRARY_PATH={ld_path}")
    return argv + [flux_cmd, "relay", parts.path]


class _SshLink:
    """The ssh connector: a pipe to ``flux relay`` on the remote host."""

    def __init__(self, rest: str):
        argv = ssh_command(rest)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        except OSError as err:
            raise _connect_error(f"ssh-connector: {argv[0]}: {err.strerror}\n"
                                 "Hint: set FLUX_SSH in environment to override") from None
        if self.proc.stdout.read(1) != b"\0":  # flux relay's handshake byte
            text = self.proc.stderr.read().decode(errors="replace").strip()
            self.proc.wait()
            raise OSError(errno.ECONNRESET, "Unable to connect to Flux: " + (text or SSH_HINT))
        threading.Thread(target=shutil.copyfileobj,
                         args=(self.proc.stderr, open(os.devnull, "wb")), daemon=True).start()
        self.rfile, self.wfile = self.proc.stdout, self.proc.stdin

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


class Flux:
    """A handle on a double broker, over ``local://`` or ``ssh://``."""

    def __init__(self, uri: str | None = None):
        # As libflux: an empty FLUX_URI is read as a connector named ''.
        uri = uri or os.environ.get("FLUX_URI", DEFAULT_URI)
        scheme, sep, path = uri.partition("://")
        self.uri = uri
        self._link = None
        if sep and scheme == "ssh":
            self._link = _SshLink(path)
            self._rfile, self._wfile = self._link.rfile, self._link.wfile
        else:
            if not sep or scheme != "local":
                raise _connect_error(f"Unable to find connector name '{scheme if sep else uri}'")
            self._sock = connect_socket(path)
            self._rfile = self._wfile = self._sock.makefile("rwb")
        self._tag = 0
        self._streams: set[int] = set()  # matchtags of streaming RPCs
        self._replies: dict[int, deque] = {}
        self._pending_callbacks: dict[int, Future] = {}
        # Replies are read as they come, as libflux's reactor does, so that many
        # requests sent before any answer is read cannot fill the socket both ways.
        self._arrived = threading.Condition()
        self._closed = False
        threading.Thread(target=self._reader, daemon=True).start()
        # As libflux reads it (strtoul, base 0): without the owner bit (1), a guest.
        rolemask = os.environ.get("FLUX_HANDLE_ROLEMASK")
        guest = rolemask is not None and not int(rolemask, 0) & 1
        # FLUXDOUBLE_USERID credits the connection to another user, as the peer
        # credentials of that user's process would (tests/multiuser.py's owner).
        userid = int(os.environ.get("FLUXDOUBLE_USERID", os.getuid()))
        self._cred = {"userid": userid, "guest": guest}

    def rpc(self, topic: str, payload: dict | None = None, nodeid: int = 0,
            flags: int = 0) -> Future:
        self._tag += 1
        if flags & FLUX_RPC_STREAMING:
            self._streams.add(self._tag)
        message = {"topic": topic, "payload": payload, "matchtag": self._tag,
                   "cred": self._cred, "streaming": bool(flags & FLUX_RPC_STREAMING)}
        try:
            self._wfile.write((json.dumps(message) + "\n").encode())
            self._wfile.flush()
        except (OSError, ValueError):  # ValueError: the pipe was closed
            raise OSError(errno.ECONNRESET, "Connection reset by peer") from None
        return Future(self, self._tag)

    def _reader(self) -> None:
        try:
            for line in iter(self._rfile.readline, b""):
                reply = json.loads(line)
                with self._arrived:
                    self._replies.setdefault(reply["matchtag"], deque()).append(reply)
                    self._arrived.notify_all()
        except (OSError, ValueError):
            pass
        with self._arrived:
            self._closed = True
            self._arrived.notify_all()

    def _wait_for(self, matchtag: int, timeout: float | None = None,
                  keep: bool = False) -> dict:
        """The next response to ``matchtag`` (left in place with ``keep``)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._arrived:
            while not self._replies.get(matchtag):
                if self._closed:
                    raise OSError(errno.ECONNRESET, "Connection reset by peer")
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise OSError(errno.ETIMEDOUT, "Connection timed out")
                self._arrived.wait(left)
            queue = self._replies[matchtag]
            if keep:
                return queue[0]
            reply = queue.popleft()
            if not queue:
                del self._replies[matchtag]
            return reply

    def reactor_run(self) -> int:
        """Run callbacks of then() futures as their replies arrive, until none are left.

        As libflux's: a response the reactor reads for a streaming RPC with no then()
        callback (one read with wait_for/get, as a JournalConsumer's poll) has no
        handler in this reactor and is dropped (measured on real 0.76 and 0.88: a
        journal event that came while the handle ran its reactor for other requests
        never reached poll())."""
        while self._pending_callbacks:
            tag = min(self._pending_callbacks)
            future = self._pending_callbacks.pop(tag)
            future._current = self._wait_for(tag)  # what the callback's get() returns
            self._drop_unhandled_streams()
            callback, args = future._callback
            callback(future, *args)
        return 0

    def _drop_unhandled_streams(self) -> None:
        with self._arrived:
            for tag in self._streams - self._pending_callbacks.keys():
                self._replies.pop(tag, None)

    def attr_get(self, name: str) -> str:
        return self.rpc("attr.get", {"name": name}).get()["value"]

    def close(self) -> None:
        if self._link:
            self._link.close()
        else:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # ends the reader thread
            self._sock.close()
