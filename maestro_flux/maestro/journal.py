"""The study's journal and the conductor's heartbeat, in the study's own directory.

``meta/maestro-flux/journal.jsonl`` (model/records.py says what a line holds) is
appended to as things happen: an ``intent`` before each submission, the id the
moment the broker returns it, and a closing record for every intent. A write is one
``write`` call of whole lines, so a killed conductor leaves at most a torn last
line; the next append starts on a fresh line, so the torn one never swallows it,
and the reader skips it.

A journal write never raises: a study must not lose a job the broker accepted
because a disk is full. A failed write is logged once with its reason and the study
goes on (``maestro-flux resume`` then finds the job by the token it carries).

``conductor.json`` says which process drives the study and when its last cycle
ran (the conductor lock, conductor_lock.py, is the authority; the heartbeat is for
people and for filesystems whose locks do not work).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from maestro_flux.maestro.study_context import study_root
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.journal import Replay, replay
from maestro_flux.model.notices import Notices
from maestro_flux.model.records import Record, parse

LOGGER = logging.getLogger(__name__)
FOLDER = Path("meta") / "maestro-flux"
JOURNAL = "journal.jsonl"
HEARTBEAT = "conductor.json"


class Journal:
    """The append-only journal of one study (its owner: the study's StudyState)."""

    def __init__(self, root: Path, notices: Notices | None = None) -> None:
        self.root = root
        self.folder = root / FOLDER
        self.path = self.folder / JOURNAL
        self.notices = notices or Notices()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fresh_line = not _ends_a_line(self.path)
        self._file: Any = None

    def write(self, *records: Record) -> bool:
        """Append whole lines in one write; False (logged once) if it failed."""
        now = time.time()
        text = "".join(replace(r, time=r.time or now).line() + "\n" for r in records)
        try:
            if self._file is None:  # kept open: a study of 10,000 steps writes 20,000 lines
                self._file = open(self.path, "a")
            self._file.write(("\n" if self._fresh_line else "") + text)
            self._file.flush()
            self._fresh_line = False
            return True
        except OSError as err:
            self._fresh_line = True  # a part may have been written
            self.close()  # opened again at the next write (a full disk, a lost NFS mount)
            self.notices.log_once(LOGGER, logging.ERROR, f"journal:{err.errno}",
                                  "maestro-flux: cannot write the study's journal %s (%s); "
                                  "the study goes on, and 'maestro-flux resume' finds its "
                                  "jobs by the token each carries", self.path,
                                  err.strerror or err)
            return False

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def intent(self, step: str, kind: str, name: str, waits_on: tuple = (), restarts: int = 0,
               attempt: int = 1) -> str:
        """Note that a job (named ``name`` in Flux) is about to be submitted for
        ``step``; returns its token."""
        token = uuid.uuid4().hex[:16]
        self.write(Record("intent", step=step, token=token, kind=kind, name=name,
                          waits_on=tuple(waits_on) or None, restarts=restarts or None,
                          attempt=attempt if attempt > 1 else None))
        return token

    def closed(self, event: str, step: str, token: str, jobid: str | None = None,
               reason: str | None = None) -> bool:
        """``submitted`` (with the job id), ``refused`` or ``abandoned`` (with why)."""
        return self.write(Record(event, step=step, token=token, jobid=jobid, reason=reason))

    def event(self, event: str, step: str, jobid: str) -> bool:
        """``adopted`` or ``dropped``, for a job sent ahead."""
        return self.write(Record(event, step=step, jobid=jobid))

    def conductor(self, info: dict[str, Any]) -> bool:
        return self.write(Record("conductor", info=info))

    def retry(self, step: str, attempt: int) -> bool:
        return self.write(Record("retry", step=step, attempt=attempt))

    def beat(self, info: dict[str, Any]) -> None:
        """Rewrite the heartbeat (atomically: a reader never sees half of it)."""
        partial = self.folder / f".{HEARTBEAT}.{os.getpid()}"
        try:
            partial.write_text(json.dumps({**info, "pid": os.getpid(),
                                           "host": socket.gethostname(), "time": time.time()}))
            os.replace(partial, self.folder / HEARTBEAT)
        except OSError as err:
            self.notices.log_once(LOGGER, logging.WARNING, f"beat:{err.errno}",
                                  "maestro-flux: cannot write the heartbeat in %s (%s)",
                                  self.folder, err.strerror or err)


def _ends_a_line(path: Path) -> bool:
    """True if the file is empty or missing, or ends with a newline."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return True
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except OSError:
        return True


def for_workspace(workspace: str | None, notices: Notices | None = None) -> Journal | None:
    """The journal of the study holding ``workspace`` (None outside a study)."""
    root = study_root(workspace) if workspace else None
    return Journal(root, notices) if root else None


def read(root: Path) -> Replay:
    """The journal of the study at ``root`` read back (empty if it has none).

    Raises NewerSchema (one line, naming the file and line) for a journal written by
    a newer maestro-flux, OSError if it cannot be read, and UnicodeDecodeError if it
    holds what no maestro-flux writes.
    """
    path = root / FOLDER / JOURNAL
    if not path.exists():
        return Replay()
    # Records are ASCII (json.dumps escapes the rest): other bytes are not a torn line
    # but a damaged file, and raise UnicodeDecodeError.
    with open(path, encoding="ascii") as handle:
        records = (parse(line, f"{path}:{number}") for number, line in enumerate(handle, 1))
        return replay(record for record in records if record is not None)


def read_conductors(root: Path) -> list[dict[str, Any]]:
    """The conductors journaled for the study at ``root`` (none if it cannot be read)."""
    try:
        return read(root).conductors
    except (OSError, UnicodeDecodeError, MaestroFluxError):
        return []


def heartbeat(root: Path) -> dict[str, Any] | None:
    """The last heartbeat of the study's conductor, if any."""
    path = root / FOLDER / HEARTBEAT
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def conductor_options(argv: list[str]) -> dict[str, Any]:
    """The sleep a conductor process was started with, read from its command line:
    Maestro's background ``conductor -t N DIR``, ``maestro run -s N`` in the foreground,
    or ``maestro-flux resume -s N``. Only what is written there (Maestro keeps it
    nowhere else); the throttle and restart limit travel with the graph."""
    flag = "-t" if argv and Path(argv[0]).name == "conductor" else "-s"
    long = "--sleeptime"
    for index, arg in enumerate(argv[:-1]):
        if arg in (flag, long):
            try:
                return {"sleep": int(argv[index + 1])}
            except ValueError:
                return {}
    for arg in argv:
        if arg.startswith(long + "="):
            return {"sleep": int(arg.split("=", 1)[1])} if arg.split("=", 1)[1].isdigit() else {}
    return {}
