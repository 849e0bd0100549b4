"""Everything maestro-flux writes so that it can be found again, in one schema.

Two kinds of record outlive the process that wrote them:

- the study's **journal** (``meta/maestro-flux/journal.jsonl``), one :class:`Record`
  per line, appended as things happen (model/journal.py folds them back);
- a job's **identity**, stamped in its jobspec at ``attributes.user.maestro_flux``
  (:data:`IDENTITY_PATH`), so that a job whose id never reached the journal is found
  again in Flux (broker/identity.py reads it).

Each carries the schema version it was written with (``v``). A reader refuses a
newer version in one line (:class:`NewerSchema`), and reads every older one.

Journal events (``event``):

========== ==================================================================
intent      a job is about to be submitted for ``step``, with ``token``;
            ``kind`` says who submits it (``maestro``, ``ahead``), ``name``
            is the job's name in Flux;
            ``restarts`` is the step's restart count when it was sent,
            ``attempt`` its attempt (1, then 2... after each retry)
submitted   closes an intent: the broker accepted the job as ``jobid``
refused     closes an intent: the broker refused it (``reason``)
abandoned   closes an intent: the request never reached the broker, or its
            answer was lost and no job carries the token (``reason``)
adopted     Maestro took the job sent ahead as the step's job
dropped     a job sent ahead is of no use any more (canceled, or it had ended)
conductor   a conductor process took the study up (``info``: pid, host, argv,
            sleep, throttle, and for the first one its environment)
retry       ``maestro-flux retry`` reset ``step`` for attempt ``attempt``
========== ==================================================================

Version history: 1 had no closing records but ``submitted``, and no
``restarts``/``attempt``; version 2 added them. Both read the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from maestro_flux.model.errors import MaestroFluxError

#: The schema version this maestro-flux writes (journal records and job identities).
VERSION = 2
EVENTS = ("intent", "submitted", "refused", "abandoned", "adopted", "dropped", "conductor",
          "retry")
#: Events that close an intent: after one, resume no longer looks for its job.
CLOSING = frozenset(("submitted", "refused", "abandoned"))
#: Where in the jobspec's attributes a job carries its identity.
IDENTITY_PATH = "user.maestro_flux"


class NewerSchema(MaestroFluxError):
    """A record written by a newer maestro-flux than this one."""


@dataclass(frozen=True)
class Record:
    """One line of the journal."""

    event: str
    step: str | None = None
    token: str | None = None
    jobid: str | None = None
    kind: str | None = None  # "maestro" or "ahead"
    name: str | None = None  # the job's name in Flux (an intent's), to search it by
    waits_on: tuple[tuple[str, str | None], ...] | None = None
    restarts: int | None = None
    attempt: int | None = None
    reason: str | None = None
    info: dict[str, Any] | None = None
    time: float | None = None
    v: int = VERSION

    def line(self) -> str:
        """The record as its journal line (no newline)."""
        data = {name: value for name in _ORDER if (value := getattr(self, name)) is not None}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


_ORDER = tuple(Record.__dataclass_fields__)
_FIELDS = frozenset(_ORDER)


def _check_version(data: dict, where: str, what: str) -> None:
    version = data.get("v", 1)
    if not isinstance(version, int) or version > VERSION:
        raise NewerSchema(f"{where}: {what} written by a newer maestro-flux (schema version "
                          f"{version}; this one reads up to {VERSION}): upgrade maestro-flux")


def parse(line: str, where: str) -> Record | None:
    """A Record from one journal line; None for a line that is not one (a torn line, a
    line of an unknown event). A line of a newer schema raises NewerSchema naming
    ``where``."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("event") not in EVENTS:
        return None
    _check_version(data, where, "a journal line")
    data.setdefault("v", 1)  # the first schema wrote no version
    if data.get("waits_on") is not None:
        try:
            data["waits_on"] = tuple((str(p), None if j is None else str(j))
                                     for p, j in data["waits_on"])
        except (TypeError, ValueError):
            return None
    return Record(**{k: v for k, v in data.items() if k in _FIELDS})


@dataclass(frozen=True)
class Identity:
    """What a job says of itself: its study's directory, its step, its submission
    token and its step's attempt."""

    study: str
    step: str
    token: str
    attempt: int = 1
    v: int = VERSION

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def identity_from(data: Any, where: str) -> Identity | None:
    """The Identity in a jobspec's ``attributes.user.maestro_flux`` (None if the job
    carries none); NewerSchema, naming ``where``, if a newer maestro-flux wrote it."""
    if not isinstance(data, dict) or not data.get("token"):
        return None
    _check_version(data, where, "the job's identity")
    return Identity(str(data.get("study", "")), str(data.get("step", "")),
                    str(data["token"]), int(data.get("attempt") or 1), int(data.get("v", 1)))
