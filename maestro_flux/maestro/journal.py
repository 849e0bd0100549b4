"""The study's journal and the conductor's heartbeat, in the study's own directory.

``meta/maestro-flux/journal.jsonl`` (model/journal.py says what a line holds) is
appended to as things happen: an ``intent`` before each submission, the id the
moment the broker returns it, before Maestro stores it. A write is one ``write``
call of whole lines, so a killed conductor leaves at most a torn last line, which
the reader skips. ``conductor.json`` says which process drives the study and when
its last cycle ran, so that ``maestro-flux resume`` can tell a live conductor
from a dead one.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from maestro_flux.maestro.study_context import study_root
from maestro_flux.model.journal import Record, Replay, parse, replay

FOLDER = Path("meta") / "maestro-flux"
JOURNAL = "journal.jsonl"
HEARTBEAT = "conductor.json"


class Journal:
    """The append-only journal of one study (its owner: the study's StudyState)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / FOLDER
        self.path = self.folder / JOURNAL
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, *records: Record) -> None:
        """Append whole lines in one write: what the broker answered is on disk before
        Maestro sees it."""
        now = time.time()
        text = "".join(replace(r, time=r.time or now).line() + "\n" for r in records)
        with open(self.path, "a") as handle:
            handle.write(text)

    def intent(self, step: str, kind: str, waits_on: tuple = ()) -> str:
        """Note that a job is about to be submitted for ``step``; returns its token."""
        token = uuid.uuid4().hex[:16]
        self.write(Record("intent", step=step, token=token, kind=kind,
                          waits_on=tuple(waits_on) or None))
        return token

    def submitted(self, step: str, token: str, jobid: str) -> None:
        self.write(Record("submitted", step=step, token=token, jobid=jobid))

    def event(self, event: str, step: str, jobid: str) -> None:
        """``adopted`` or ``dropped``, for a job sent ahead."""
        self.write(Record(event, step=step, jobid=jobid))

    def conductor(self, info: dict[str, Any]) -> None:
        self.write(Record("conductor", info=info))

    def beat(self, info: dict[str, Any]) -> None:
        """Rewrite the heartbeat (atomically: a reader never sees half of it)."""
        partial = self.folder / f".{HEARTBEAT}.{os.getpid()}"
        partial.write_text(json.dumps({**info, "pid": os.getpid(),
                                       "host": socket.gethostname(), "time": time.time()}))
        os.replace(partial, self.folder / HEARTBEAT)


def for_workspace(workspace: str | None) -> Journal | None:
    """The journal of the study holding ``workspace`` (None outside a study)."""
    root = study_root(workspace) if workspace else None
    return Journal(root) if root else None


def read(root: Path) -> Replay:
    """The journal of the study at ``root`` read back (empty if it has none)."""
    path = root / FOLDER / JOURNAL
    if not path.exists():
        return Replay()
    lines = path.read_text().splitlines()
    records = (parse(line, f"{path}:{number}") for number, line in enumerate(lines, 1))
    return replay(record for record in records if record is not None)


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
