"""The study's journal read back: what every submission became.

The records and their schema are model/records.py's; :func:`replay` folds them,
in order, into a :class:`Replay`: each submission by its token (its step, who sent
it, its job id once known, whether it was closed, adopted or dropped), each step's
restart count and attempt as last journaled, and the conductors that drove the
study. This module does no I/O (maestro/journal.py reads and writes the file).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from maestro_flux.model.records import CLOSING, Record


@dataclass
class Sent:
    """A submission of a step, as the journal knows it."""

    step: str
    token: str
    kind: str
    jobid: str | None = None
    name: str | None = None  # the job's name in Flux
    waits_on: tuple[tuple[str, str | None], ...] = ()
    #: submitted, refused or abandoned: how the intent was closed (None: still open).
    closed: str | None = None
    adopted: bool = False
    dropped: bool = False
    attempt: int = 1
    time: float | None = None  # when the intent was written

    @property
    def open(self) -> bool:
        """True while nobody knows whether the broker has the job: resume searches it."""
        return self.closed is None


@dataclass
class Replay:
    """The journal read back."""

    sent: dict[str, Sent] = field(default_factory=dict)  # by token, in order
    #: Each conductor record's facts, with the time it was written (``time``).
    conductors: list[dict[str, Any]] = field(default_factory=list)
    #: Step -> the most restarts any of its submissions was sent with.
    restarts: dict[str, int] = field(default_factory=dict)
    #: Step -> its current attempt (``maestro-flux retry`` starts a new one).
    attempts: dict[str, int] = field(default_factory=dict)

    def of_step(self, step: str) -> list[Sent]:
        return [sent for sent in self.sent.values() if sent.step == step]

    def unanswered(self) -> list[Sent]:
        """Submissions whose job id the journal does not have and that nothing closed:
        the broker may have accepted them (a conductor died in between)."""
        return [sent for sent in self.sent.values() if sent.open]

    @property
    def options(self) -> dict[str, Any]:
        """The conductor options the study was started with (the first conductor's)."""
        return dict(self.conductors[0]) if self.conductors else {}

    @property
    def started(self) -> float | None:
        """When the study's first conductor (or first submission) was journaled."""
        times = [c["time"] for c in self.conductors[:1] if c.get("time")]
        times += [s.time for s in list(self.sent.values())[:1] if s.time]
        return min(times) if times else None


def _intent(state: Replay, entry: Record) -> None:
    state.sent[entry.token or ""] = Sent(
        entry.step or "", entry.token or "", entry.kind or "maestro", name=entry.name,
        waits_on=entry.waits_on or (), attempt=entry.attempt or 1, time=entry.time)
    if entry.restarts:
        step = entry.step or ""
        state.restarts[step] = max(state.restarts.get(step, 0), entry.restarts)


def _close(state: Replay, entry: Record, by_jobid: dict[str, Sent]) -> None:
    sent = state.sent.get(entry.token or "")
    if sent is None:
        return
    sent.closed = entry.event
    if entry.event == "submitted" and entry.jobid:
        sent.jobid = entry.jobid
        by_jobid[entry.jobid] = sent


def replay(records: Iterable[Record]) -> Replay:
    """Fold the records, in order, into a Replay."""
    state = Replay()
    by_jobid: dict[str, Sent] = {}
    for entry in records:
        if entry.event == "conductor":
            state.conductors.append({**(entry.info or {}), "time": entry.time})
        elif entry.event == "intent" and entry.token:
            _intent(state, entry)
        elif entry.event in CLOSING:
            _close(state, entry, by_jobid)
        elif entry.event in ("adopted", "dropped") and entry.jobid in by_jobid:
            setattr(by_jobid[entry.jobid], entry.event, True)
        elif entry.event == "retry" and entry.step:
            state.attempts[entry.step] = entry.attempt or 1
    return state
