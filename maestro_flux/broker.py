"""A connection to one broker: opened lazily, cached per URI per process, and
reopened once when the broker connection is lost.

Maestro rebuilds the adapter two or three times per conductor cycle; the
connection, the broker facts (guest or owner) and the poll bookkeeping live
here, per process, so that rebuilding costs nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from maestro_flux import flux_api
from maestro_flux.errors import BrokerError
from maestro_flux.states import JobStatus, status_from_listing

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

#: errnos that mean the connection itself is gone, not that a request failed.
LOST_CONNECTION = {errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNREFUSED,
                   errno.ENOSYS, errno.EHOSTUNREACH, errno.ETIMEDOUT}
#: Jobs that go inactive between two polls are caught by asking for a little
#: more than the time since the last poll.
POLL_SLACK = 5.0


@dataclass
class Broker:
    """One broker, as seen from this process."""

    uri: str | None
    _handle: Any = None
    _guest: bool | None = None
    _last_poll: float | None = None
    _final: dict[int, JobStatus] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.uri or "the system instance"

    def handle(self) -> Any:
        """The open handle, connecting on first use."""
        if self._handle is None:
            try:
                self._handle = flux_api.connect(self.uri)
            except OSError as err:
                raise BrokerError(f"cannot connect to Flux at {self.label}: "
                                  f"{err.strerror or err}") from None
        return self._handle

    def call(self, operation: Callable[[Any], T]) -> T:
        """Run ``operation(handle)``, reconnecting once if the connection was lost."""
        try:
            return operation(self.handle())
        except OSError as err:
            if err.errno not in LOST_CONNECTION:
                raise
            LOGGER.warning("Flux connection to %s lost (%s); reconnecting once",
                           self.label, err.strerror or err)
            self._handle = None
            return operation(self.handle())

    def is_guest(self) -> bool:
        """True if we are not the instance owner, so urgency > 16 and waitable are refused."""
        if self._guest is None:
            owner = self.call(lambda h: flux_api.attr(h, "security.owner"))
            self._guest = int(owner) != os.getuid()
            if self._guest:
                LOGGER.info("Submitting to %s as a guest: urgency is capped at 16", self.label)
        return self._guest

    def submit(self, jobspec: Any, urgency: int) -> int:
        """Submit a jobspec; returns the integer job id."""
        return self.call(lambda h: flux_api.submit(h, jobspec, urgency))

    def submit_nowait(self, jobspec: Any, urgency: int) -> Any:
        """Send a submit request without waiting for the id (see pipeline.py).

        Not retried on a lost connection: the caller falls back to ``submit``.
        """
        return flux_api.submit_nowait(self.handle(), jobspec, urgency)

    def statuses(self, jobids: Iterable[int]) -> dict[int, JobStatus | None]:
        """Status of each id from one job-list request (None: unknown to the broker).

        Inactive jobs never change, so their status is remembered and later
        polls ask only for jobs that went inactive since the previous poll.
        """
        wanted = set(jobids)
        missing = wanted - self._final.keys()
        last = self._last_poll
        found = self._poll(last) if missing else {}
        if missing - found.keys() and last is not None:
            found = self._poll(None)  # an id we never saw: ask for the whole history once
        return {jobid: self._final.get(jobid) or found.get(jobid) for jobid in wanted}

    def _poll(self, last: float | None) -> dict[int, JobStatus]:
        started = time.time()
        since = max(0.0, last - POLL_SLACK) if last is not None else 0.0
        entries = self.call(lambda h: flux_api.list_jobs(h, since))
        self._last_poll = started
        found = {}
        for entry in entries:
            status = status_from_listing(entry)
            found[int(entry["id"])] = status
            if status.state == "INACTIVE":
                self._final[int(entry["id"])] = status
        return found

    def cancel(self, jobids: Iterable[int], reason: str) -> dict[int, OSError | None]:
        """Cancel all ids in one pass; jobid -> error (None when canceled)."""
        return self.call(lambda h: flux_api.cancel_all(h, list(jobids), reason))


_BROKERS: dict[str | None, Broker] = {}


def broker_for(uri: str | None) -> Broker:
    """The process-wide Broker for a URI (no connection is opened here)."""
    if uri not in _BROKERS:
        _BROKERS[uri] = Broker(uri)
    return _BROKERS[uri]


def forget_brokers() -> None:
    """Drop every cached connection (tests, and a broker that was replaced)."""
    _BROKERS.clear()
