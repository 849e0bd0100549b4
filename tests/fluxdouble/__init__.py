"""A test double of the Flux Python bindings' API subset that maestro-flux uses.

``fluxdouble.Flux(uri)`` connects to a double broker (``python -m fluxdouble``)
over a Unix socket at a ``local://`` URI, and ``fluxdouble.job`` mirrors
``flux.job``: JobspecV1, JobID, submit/submit_async, job_list, cancel/
cancel_async, kill. The same contract tests run against it and against a real
broker; see tests/conftest.py.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Callable
from typing import Any

DEFAULT_URI = "local:///run/flux/local"


def _connect_error(text: str) -> OSError:
    return OSError(errno.ENOENT, f"Unable to connect to Flux: {text}")


class Future:
    """An RPC in flight: ``get()`` waits for it, ``then()`` runs a callback in reactor_run."""

    def __init__(self, handle: Flux, matchtag: int):
        self.handle = handle
        self.matchtag = matchtag
        self._callback: tuple[Callable, tuple] | None = None

    def _reply(self) -> dict:
        return self.handle._wait_for(self.matchtag)

    def get(self) -> Any:
        reply = self._reply()
        if "errnum" in reply:
            raise OSError(reply["errnum"], reply["errstr"])
        return reply["payload"]

    def then(self, callback: Callable, *args: Any) -> Future:
        self._callback = (callback, args)
        self.handle._pending_callbacks[self.matchtag] = self
        return self


class Flux:
    """A handle on a double broker."""

    def __init__(self, uri: str | None = None):
        uri = uri or os.environ.get("FLUX_URI") or DEFAULT_URI
        scheme, sep, path = uri.partition("://")
        if not sep or scheme != "local":
            raise _connect_error(f"Unable to find connector name '{scheme if sep else uri}'")
        if not os.path.exists(path):
            raise _connect_error(f"broker socket {path} was not found")
        self.uri = uri
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(path)
        except OSError as err:
            raise OSError(err.errno, f"Unable to connect to Flux: {err.strerror}") from None
        self._file = self._sock.makefile("rwb")
        self._tag = 0
        self._replies: dict[int, dict] = {}
        self._pending_callbacks: dict[int, Future] = {}
        guest = os.environ.get("FLUX_HANDLE_ROLEMASK") == "2"
        self._cred = {"userid": os.getuid(), "guest": guest}

    def rpc(self, topic: str, payload: dict | None = None) -> Future:
        self._tag += 1
        message = {"topic": topic, "payload": payload or {}, "matchtag": self._tag,
                   "cred": self._cred}
        try:
            self._file.write((json.dumps(message) + "\n").encode())
            self._file.flush()
        except OSError:
            raise OSError(errno.ECONNRESET, "Connection reset by peer") from None
        return Future(self, self._tag)

    def _read_one(self) -> None:
        line = self._file.readline()
        if not line:
            raise OSError(errno.ECONNRESET, "Connection reset by peer")
        reply = json.loads(line)
        self._replies[reply["matchtag"]] = reply

    def _wait_for(self, matchtag: int) -> dict:
        while matchtag not in self._replies:
            self._read_one()
        return self._replies.pop(matchtag)

    def reactor_run(self) -> int:
        """Run callbacks of then() futures as their replies arrive, until none are left."""
        while self._pending_callbacks:
            tag = min(self._pending_callbacks)
            future = self._pending_callbacks.pop(tag)
            reply = self._wait_for(tag)
            self._replies[tag] = reply  # let the callback's get() find it
            callback, args = future._callback
            callback(future, *args)
        return 0

    def attr_get(self, name: str) -> str:
        return self.rpc("attr.get", {"name": name}).get()["value"]

    def close(self) -> None:
        self._sock.close()
