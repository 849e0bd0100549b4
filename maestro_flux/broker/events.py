"""Telling when a study's jobs start or end, at a bounded cost to the broker.

Two ways, chosen by capability (:func:`watch_for`), never by version string:

- :class:`JournalWatch`, where the caller owns the instance and the bindings have
  ``flux.job.JournalConsumer`` (flux-core 0.68 on): one streaming request on the job
  manager's journal (``job-manager.events-journal``, guests are refused it), filtered to
  the events that change what Maestro sees; an idle study costs the broker nothing.
- :class:`ListingWatch`, everywhere else (a guest, older bindings, over ``ssh://``
  too): one ``job-list`` request at most every :data:`INTERVAL` seconds for this user's
  running and just-ended jobs. The pending jobs, however many, are not asked for
  (job-list skips its pending list for such a request), so a study of 10,000 steps
  costs no more per second than one of 10.

Both answer the same question, :meth:`changed`: has one of these jobs started (and
is not known to be running), or ended, since the study last looked?
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from maestro_flux.broker.bindings import bindings
from maestro_flux.model.states import STATE_NAMES

#: The journal events that change what Maestro sees of a job: it starts, or it is
#: inactive ("clean"; Maestro acts on ended jobs only once job-list says INACTIVE, so
#: waking at "finish" or at a fatal exception would run a cycle that sees CLEANUP).
CHANGES = ("start", "clean")
#: Seconds between two job-list requests of a ListingWatch.
INTERVAL = 1.0
#: Flux's state bits of a running job, and of an ended one.
RUNNING = {bit for bit, name in STATE_NAMES.items() if name in ("RUN", "CLEANUP")}
INACTIVE = next(bit for bit, name in STATE_NAMES.items() if name == "INACTIVE")
#: job-list's inactive jobs are asked for a little before the study last looked.
SLACK = 5.0
#: Seconds to wait for the journal's first answer (or its refusal).
FIRST_ANSWER = 5.0


def news(name: str, known_running: bool) -> bool:
    """Whether a journal event tells Maestro something it does not know: a start of a
    job it does not know runs, or the job inactive."""
    if name == "start":
        return not known_running
    return name == "clean"


class JournalWatch:
    """The job manager's journal, one streaming request for the watch's life."""

    how = "the job manager's journal (one streaming request)"

    def __init__(self, handle: Any) -> None:
        base = bindings().job.JournalConsumer

        class Filtered(base):  # the journal service filters events by name (journal.c)
            @property
            def request_payload(self) -> dict:
                return {**super().request_payload, "allow": dict.fromkeys(CHANGES, 1)}

        self._consumer = Filtered(handle, full=False).start()
        # The first response is the backlog, or the refusal (a guest's EPERM): wait for
        # it, raise a refusal now, and leave an answer to poll() (get() keeps it).
        self._consumer.rpc.wait_for(FIRST_ANSWER).get()
        # Watched jobs seen starting (and not yet inactive), and seen inactive. An event
        # is read once: one read in an earlier wait (a job sent ahead that started
        # before Maestro took it over) must still wake a later one, where Maestro has
        # yet to see it. Kept to the jobs still watched.
        self._started: set[int] = set()
        self._inactive: set[int] = set()

    def changed(self, ids: set[int], running: set[int], timeout: float, since: float,
                ended: set[int] | None = None) -> bool:
        """True as soon as one of ``ids`` starts (and is not in ``running``, the jobs
        Maestro knows run) or ends (Maestro watches only jobs it has not seen end);
        False after ``timeout`` seconds without such an event. Events that came while
        the conductor was busy are read first. The ids seen ending go into ``ended``."""
        self._started &= ids
        self._inactive &= ids
        if ended is not None:
            ended |= self._inactive
        seen = bool(self._inactive or self._started - running)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self._consumer.poll(max(0.0, left))
            except TimeoutError:
                return seen
            if event is None:
                raise OSError(errno.ECONNRESET, "the job manager's journal ended")
            if event.jobid in ids and news(event.name, event.jobid in running):
                self._note(event.jobid, event.name, ended)
                return True
            if left <= 0:
                return seen

    def _note(self, jobid: int, name: str, ended: set[int] | None) -> None:
        if name == "start":
            self._started.add(jobid)
            return
        self._started.discard(jobid)
        self._inactive.add(jobid)
        if ended is not None:
            ended.add(jobid)

    def close(self) -> None:
        try:
            self._consumer.stop()
        except OSError:
            pass


class ListingWatch:
    """job-list of this user's running and just-ended jobs, once per INTERVAL."""

    how = f"job-list, at most once every {INTERVAL:g}s"

    def __init__(self, handle: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._handle, self._clock = handle, clock
        self._next = 0.0
        # Watched jobs the last listing showed inactive: a call that must not list yet
        # (INTERVAL) still reports them in ``ended``.
        self._inactive: set[int] = set()
        #: Requests made, for the load figures (benchmarks).
        self.requests = 0

    def listing(self, since: float) -> list[dict]:
        payload = {"max_entries": 0, "attrs": ["state"], "since": max(0.0, since - SLACK),
                   "constraint": {"and": [{"userid": [os.getuid()]},
                                          {"states": [sum(RUNNING) | INACTIVE]}]}}
        self.requests += 1
        return self._handle.rpc("job-list.list", payload).get()["jobs"]

    def changed(self, ids: set[int], running: set[int], timeout: float, since: float,
                ended: set[int] | None = None) -> bool:
        """True if one of ``ids`` runs and is not in ``running``, or has ended (Maestro
        polls only jobs it has not seen end). The ids seen ended go into ``ended``."""
        self._inactive &= ids
        found = self._look(ids, running, timeout, since)
        if ended is not None:
            ended |= self._inactive
        return found

    def _look(self, ids: set[int], running: set[int], timeout: float, since: float) -> bool:
        """One listing, once INTERVAL has passed since the last (False before then)."""
        now = self._clock()
        if now < self._next:
            time.sleep(min(timeout, self._next - now))
            if self._clock() < self._next:
                return False
        self._next = self._clock() + INTERVAL
        found = False
        for entry in self.listing(since):
            jobid, state = int(entry["id"]), entry.get("state")
            if jobid not in ids:
                continue
            if state == INACTIVE:
                self._inactive.add(jobid)
            found = found or state == INACTIVE or (state in RUNNING and jobid not in running)
        return found

    def close(self) -> None:
        """Nothing held open."""


def journal_available() -> bool:
    """Whether the bindings have the journal's consumer (flux-core 0.68 on)."""
    return hasattr(bindings().job, "JournalConsumer")


def watch_for(handle: Any, guest: bool) -> JournalWatch | ListingWatch:
    """The journal where the caller owns the instance and the bindings have it (and the
    broker grants it), else job-list."""
    if not guest and journal_available():
        try:
            return JournalWatch(handle)
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOSYS, errno.EPROTO, errno.ETIMEDOUT):
                raise
    return ListingWatch(handle)


def job_numbers(texts: Iterable[Any], parse: Callable[[Any], int]) -> set[int]:
    """The job ids among ``texts`` (placeholders and bad ids left out)."""
    found = set()
    for text in texts:
        try:
            found.add(parse(text))
        except (ValueError, TypeError):
            continue
    return found
