"""One conductor per study: a lock held for the conductor process's whole life.

``meta/maestro-flux/conductor.lock`` is locked with ``flock`` by the process that
drives the study (``maestro run``'s conductor at its first cycle, before it submits
anything; ``maestro-flux resume`` and ``retry`` before they load the study) and holds
the holder's pid and host, so that a second one is refused in one line naming them.
The kernel drops the lock when the process ends, however it ends. A ``flock`` is
inherited across ``exec``, so a command that detaches hands its lock to the
conductor it starts (:meth:`ConductorLock.inheritable`) and no third process can
slip in between.

Where the filesystem does not support locks (some NFS setups answer ENOLCK), the
lock says so once and the heartbeat (journal.py) is all there is: resume then
refuses a study whose conductor beat recently.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from maestro_flux.model.errors import MaestroFluxError

LOCK = "conductor.lock"
#: errnos of a filesystem without working locks.
NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class Held(MaestroFluxError):
    """Another live process drives the study."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: float
    command: str = ""

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}" + (f" ({self.command})" if self.command else "")


def read_holder(folder: Path) -> Holder | None:
    """Who holds (or last held) the study's lock, as it wrote itself down."""
    try:
        data = json.loads((folder / LOCK).read_text() or "{}")
        return Holder(int(data["pid"]), str(data["host"]), float(data.get("since", 0)),
                      str(data.get("command", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _holder_soon(folder: Path, wait: float = 1.0) -> Holder | None:
    """The holder, given a moment to write itself down (it locks, then writes)."""
    end = time.time() + wait
    while True:
        holder = read_holder(folder)
        if holder is not None or time.time() >= end:
            return holder
        time.sleep(0.02)


class ConductorLock:
    """The study's lock, held by this process once :meth:`acquire` returned."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK
        self._fd: int | None = None
        #: False where the filesystem cannot lock (the heartbeat is the fallback).
        self.supported = True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, command: str = "") -> ConductorLock:
        """Take the lock, or raise Held naming the process that has it."""
        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _holder_soon(self.folder)
            who = holder.describe() if holder else "another process holds its lock"
            raise Held(f"{self.folder.parent.parent}: its conductor is still running "
                       f"({who}); 'maestro cancel' stops it") from None
        except OSError as err:
            if err.errno not in NO_LOCKS:
                os.close(fd)
                raise
            self.supported = False
        self._fd = fd
        self.record(os.getpid(), command)
        return self

    def record(self, pid: int, command: str = "") -> None:
        """Write down the holder (the process the lock was handed to, if it was)."""
        if self._fd is None:
            return
        text = json.dumps({"pid": pid, "host": socket.gethostname(), "since": time.time(),
                           "command": command}).encode()
        os.pwrite(self._fd, text, 0)  # then cut: a reader never finds the file empty
        os.ftruncate(self._fd, len(text))

    def inheritable(self) -> int:
        """The lock's file descriptor, to pass to a child that takes the lock over."""
        if self._fd is None:
            raise MaestroFluxError("the conductor lock is not held")
        os.set_inheritable(self._fd, True)
        return self._fd

    @classmethod
    def adopt(cls, folder: Path, fd: int) -> ConductorLock:
        """The lock a parent process handed over (its descriptor ``fd``)."""
        lock = cls(folder)
        lock._fd = fd
        os.set_inheritable(fd, False)
        lock.record(os.getpid(), "resumed conductor")
        return lock

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def live_holder(folder: Path) -> Holder | None:
    """The process that drives the study, if it is alive on this host (the lock is not
    taken to find out: a conductor starting at that moment must not be refused)."""
    holder = read_holder(folder)
    if holder is None or holder.host != socket.gethostname():
        return holder  # another host's: this one cannot tell, so it counts as alive
    try:
        os.kill(holder.pid, 0)
        command = Path(f"/proc/{holder.pid}/cmdline").read_bytes()
    except OSError:
        return None
    return holder if any(word in command for word in (b"conductor", b"maestro")) else None
