"""The conductor's sleep between two of Maestro's cycles, ended as soon as the study
changes.

Maestro's conductor sleeps ``-s`` seconds between cycles (60 by default), so it learns
what Flux did, and honours ``maestro cancel``, up to a whole sleep late. gate.py puts
:func:`conductor_sleep` in place of that sleep; it waits for whichever comes first:

- a job of the study starts or ends in Flux (broker/events.py: the job manager's journal
  where the caller owns the instance, else job-list at most once a second);
- a request appears in the study's directory: ``maestro cancel``'s, ``maestro
  update``'s, or one of maestro-flux's own (``maestro-flux cancel``, ``retry``);
- ``-s`` elapses.

Maestro's loop is otherwise unchanged: it runs its cycle at once, pickles the graph and
writes ``status.csv``, so a change in Flux reaches ``maestro status`` within about a
second. Where the broker cannot be asked, the wait is a plain sleep, said once; the next
cycle polls as it always does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maestro_flux.broker import events
from maestro_flux.broker.connection import Broker
from maestro_flux.model import jobids
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.notices import Notices

LOGGER = logging.getLogger(__name__)
#: Seconds between two looks at the study's request files (and the journal's polls).
CHECK = 0.25
#: A change in Flux is acted on no sooner than this many seconds into the wait, nor
#: sooner than COST_RATIO times what the last cycle cost (its rounds, Maestro's pickle
#: and status.csv): a study of thousands of running jobs, which start and end all the
#: time, keeps its conductor near a tenth of a core instead of cycling without pause,
#: while a small study's cycle (milliseconds) is run within FLOOR of a change.
FLOOR = 0.2
COST_RATIO = 9.0


@dataclass
class Armed:
    """What the next sleep watches: the study's broker, the request files (a name may
    be a glob: ``requests/cancel-*.json``), the jobs Maestro polls or has sent ahead,
    those it knows are running, and when it last looked."""

    broker: Broker
    requests: tuple[Path, ...]
    ids: set[int] = field(default_factory=set)
    running: set[int] = field(default_factory=set)
    since: float = 0.0
    cycle_cost: float = 0.0  # seconds the cycle that armed it took
    armed_at: float = field(default_factory=time.monotonic)


class Wake:
    """One study's wait between cycles (its owner: the study's StudyState)."""

    def __init__(self, notices: Notices) -> None:
        self.notices = notices
        self._armed: Armed | None = None
        self._watch: Any = None
        #: How the last sleep ended: "flux", "request", "timeout" or "plain" (tests).
        self.last: str | None = None

    def arm(self, broker: Broker, requests: Iterable[Path], watched: Iterable[str],
            running: Iterable[str], since: float, cycle_cost: float = 0.0) -> None:
        """Watch these jobs (Maestro's job ids, as text) in the next sleep, for what
        happened to them after ``since`` (when Maestro's last round polled them);
        ``cycle_cost``: how long the cycle took."""
        parse = jobids.parse_jobid
        self._armed = Armed(broker, tuple(requests), events.job_numbers(watched, parse),
                            events.job_numbers(running, parse), since, cycle_cost)

    def sleep(self, seconds: float) -> None:
        """Until a watched job starts or ends, a request appears, or ``seconds`` pass."""
        armed, deadline = self._armed, time.monotonic() + seconds
        self._armed, self.last = None, "timeout"
        if armed is None:
            self.last = "plain"
            time.sleep(seconds)
            return
        cost = armed.cycle_cost + (time.monotonic() - armed.armed_at)  # + pickle, status
        not_before = time.monotonic() + max(FLOOR, COST_RATIO * cost)
        watch, changed, ended = self._open(armed.broker), False, set()
        while (left := deadline - time.monotonic()) > 0:
            if any(any(path.parent.glob(path.name)) for path in armed.requests):
                self.last = "request"
                return
            # Every watched job has ended: nothing runs any more to compete with the
            # cycle, and the study may be over; else a change waits out the gap.
            if changed and (time.monotonic() >= not_before or armed.ids <= ended):
                self.last = "flux"
                return
            if watch is None:
                time.sleep(min(CHECK, left))
                continue
            try:
                changed = watch.changed(armed.ids, armed.running, min(CHECK, left),
                                        armed.since, ended) or changed
            except (OSError, MaestroFluxError) as err:
                watch = self._lost(armed.broker, err)

    def _open(self, broker: Broker) -> Any:
        if self._watch is None:
            try:
                self._watch = broker.call(lambda h: events.watch_for(h, broker.is_guest()))
            except (OSError, MaestroFluxError) as err:
                return self._lost(broker, err)
            self.notices.log_once(LOGGER, logging.INFO, f"wake:{self._watch.how}",
                                  "maestro-flux: between cycles the conductor wakes when a "
                                  "job of the study starts or ends (%s) or a request comes",
                                  self._watch.how)
        return self._watch

    def _lost(self, broker: Broker, err: Exception) -> None:
        """The watch failed: a plain sleep for the rest of this one (said once); the next
        sleep tries again."""
        if self._watch is not None:
            self._watch.close()
        self._watch = None
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        self.notices.log_once(LOGGER, logging.WARNING, "wake-lost",
                              "maestro-flux: cannot watch %s for the study's jobs (%s); the "
                              "conductor sleeps its whole -s between cycles until it can",
                              broker.label, reason)
        return None

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
