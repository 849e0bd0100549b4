"""The study's journal: what maestro-flux sent to Flux, in the order it happened.

One JSON object per line, appended, never rewritten, in the study's own directory
(maestro/journal.py writes it). Each record names the schema version (``v``) and
what happened (``event``):

- ``intent``: a job is about to be submitted for ``step``; ``token`` is also in the
  job's ``attributes.user.maestro_flux``, so a job the broker accepted whose id never
  reached the journal (the conductor died in between) is found again;
- ``submitted``: the broker accepted the job with ``token`` as ``jobid``;
- ``adopted``: Maestro took a job sent ahead as the step's job;
- ``dropped``: a job sent ahead is of no use any more (and was canceled);
- ``conductor``: a conductor started on the study (its pid, host, sleep and throttle).

``kind`` says who submitted the job: ``maestro`` (Maestro's submit) or ``ahead``
(sent ahead, waiting on ``waits_on``). :func:`replay` reads the records back into
what resume needs; this module does no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from maestro_flux.model.errors import MaestroFluxError

VERSION = 1
EVENTS = ("intent", "submitted", "adopted", "dropped", "conductor")


@dataclass(frozen=True)
class Record:
    """One line of the journal."""

    event: str
    step: str | None = None
    token: str | None = None
    jobid: str | None = None
    kind: str | None = None  # "maestro" or "ahead"
    waits_on: tuple[tuple[str, str | None], ...] | None = None
    info: dict[str, Any] | None = None  # the conductor record's facts
    time: float | None = None
    v: int = VERSION

    def line(self) -> str:
        """The record as its journal line (no newline)."""
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def parse(line: str, where: str) -> Record | None:
    """A Record from one line; None for a torn last line (the writer died mid-line).
    A line of a newer schema raises, naming ``where``."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("event") not in EVENTS:
        return None
    if data.get("v", VERSION) > VERSION:
        raise MaestroFluxError(f"{where}: written by a newer maestro-flux (journal version "
                               f"{data['v']}, this one reads {VERSION})")
    if data.get("waits_on") is not None:
        data["waits_on"] = tuple(tuple(pair) for pair in data["waits_on"])
    known = {name for name in Record.__dataclass_fields__}
    return Record(**{k: v for k, v in data.items() if k in known})


@dataclass
class Sent:
    """A job of a step, as the journal knows it."""

    step: str
    token: str
    kind: str
    jobid: str | None = None
    waits_on: tuple[tuple[str, str | None], ...] = ()
    adopted: bool = False
    dropped: bool = False


@dataclass
class Replay:
    """The journal read back: every job sent, in order, and the conductors started."""

    sent: dict[str, Sent] = field(default_factory=dict)  # by token
    conductors: list[dict[str, Any]] = field(default_factory=list)

    def of_step(self, step: str) -> list[Sent]:
        return [sent for sent in self.sent.values() if sent.step == step]

    def unanswered(self) -> list[Sent]:
        """Jobs whose submission began but whose id the journal never got."""
        return [sent for sent in self.sent.values() if sent.jobid is None]

    @property
    def options(self) -> dict[str, Any]:
        """The conductor options the study was started with (the first conductor's)."""
        return dict(self.conductors[0]) if self.conductors else {}


def replay(records: Iterable[Record]) -> Replay:
    """Fold the records, in order, into a Replay."""
    state = Replay()
    by_jobid: dict[str, Sent] = {}
    for record in records:
        if record.event == "conductor":
            state.conductors.append(dict(record.info or {}))
        elif record.event == "intent" and record.token:
            state.sent[record.token] = Sent(record.step or "", record.token,
                                            record.kind or "maestro",
                                            waits_on=record.waits_on or ())
        elif record.event == "submitted" and record.token in state.sent:
            state.sent[record.token].jobid = record.jobid
            by_jobid[record.jobid or ""] = state.sent[record.token]
        elif record.event in ("adopted", "dropped") and record.jobid in by_jobid:
            setattr(by_jobid[record.jobid], record.event, True)
    return state
