"""Faults injected into a real ``maestro`` or ``maestro-flux`` process.

    python tests/inject.py FAULT PROGRAM ARGS...

installs FAULT (``MAESTRO_FLUX_INJECT_STEP`` names the steps it hits: a name, or a
prefix ending in ``*``; ``MAESTRO_FLUX_INJECT_NTH=N``: a kill hits at the Nth chance
only), then runs PROGRAM (``maestro`` or ``maestro-flux``) with
ARGS, in this process: Maestro's background conductor is a process of its own, so
the faults that must reach it are given with ``-fg``.

Faults:

- ``journal:EVENT``: every journal write of an EVENT record fails (ENOSPC), as on a
  full disk (EVENT: intent, submitted, adopted, dropped, conductor);
- ``lost-answer``: the broker accepts the step's job, and the answer never arrives
  (the connection resets between request and answer);
- ``kill:WHERE``: SIGKILL at WHERE for the step: ``accepted`` (the broker answered,
  nothing recorded), ``stored`` (the id is on the step or among the jobs sent ahead,
  not journaled), ``journaled`` (journaled, not yet pickled), ``adopted`` (Maestro is
  taking over a job sent ahead).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
import sys

STEP_ENV = "MAESTRO_FLUX_INJECT_STEP"
NTH_ENV = "MAESTRO_FLUX_INJECT_NTH"
_chances = [0]


def hits(step: str) -> bool:
    return fnmatch.fnmatchcase(step, os.environ.get(STEP_ENV, "*"))


def _die() -> None:
    _chances[0] += 1
    if _chances[0] >= int(os.environ.get(NTH_ENV, "1")):
        os.kill(os.getpid(), signal.SIGKILL)


class _FullDisk:
    """A file whose writes of one event's records fail, as on a full disk."""

    def __init__(self, handle, event: str) -> None:
        self._handle, self._marker = handle, f'"event":"{event}"'

    def write(self, text: str) -> int:
        if self._marker in text:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._handle.write(text)

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def journal_fails(event: str) -> None:
    from maestro_flux.maestro import journal

    def full_disk_open(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        return _FullDisk(handle, event) if "a" in mode else handle

    journal.open = full_disk_open  # the module's writes go through this name


def lost_answer() -> None:
    from maestro_flux.broker.connection import Broker

    get_id = Broker.submit_get_id

    def lost(self, future, asks=None):
        jobid = get_id(self, future, asks)  # the broker has the job...
        step = getattr(future, "maestro_flux_step", None)
        if step is None or hits(step):  # ...and its answer is lost
            raise OSError(errno.ECONNRESET, "Connection reset by peer")
        return jobid

    Broker.submit_get_id = lost
    _tag_futures()


def _tag_futures() -> None:
    """Let a future say which step it was sent for."""
    from maestro_flux.maestro.submissions import Submissions

    send = Submissions.send

    def tagged(self, broker, step, *args, **kwargs):
        pending = send(self, broker, step, *args, **kwargs)
        try:
            pending.future.maestro_flux_step = step
        except AttributeError:  # a future of the real bindings takes no attribute:
            pass  # lost for every step, then
        return pending

    Submissions.send = tagged


def kill_at(where: str) -> None:
    from maestro_flux.maestro import journal
    from maestro_flux.maestro.submissions import Accepted, Submissions

    if where == "accepted":
        answer = Submissions.answer

        def killed(self, pending):
            outcome = answer(self, pending)
            if isinstance(outcome, Accepted) and hits(pending.step):
                _die()
            return outcome
        Submissions.answer = killed
    elif where in ("stored", "journaled"):
        closed = journal.Journal.closed

        def killed_at_close(self, event, step, token, jobid=None, reason=None):
            if event == "submitted" and hits(step) and where == "stored":
                _die()
            written = closed(self, event, step, token, jobid, reason)
            if event == "submitted" and hits(step):
                _die()
            return written
        journal.Journal.closed = killed_at_close
    elif where == "adopted":
        event = journal.Journal.event

        def killed_at_adoption(self, name, step, jobid):
            if name == "adopted" and hits(step):
                _die()
            return event(self, name, step, jobid)
        journal.Journal.event = killed_at_adoption
    else:
        raise SystemExit(f"inject.py: no kill point {where!r}")


def install(fault: str) -> None:
    kind, _, arg = fault.partition(":")
    if kind == "journal":
        journal_fails(arg)
    elif kind == "lost-answer":
        lost_answer()
    elif kind == "kill":
        kill_at(arg)
    elif kind != "none":
        raise SystemExit(f"inject.py: no fault {fault!r}")


def main() -> None:
    fault, program, *args = sys.argv[1:]
    install(fault)
    sys.argv = [program, *args]
    if program == "maestro":
        from maestrowf.maestro import main as run
    else:
        from maestro_flux.cli.main import main as run
    sys.exit(run())


if __name__ == "__main__":
    main()
