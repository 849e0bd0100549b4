"""A connection to one broker: opened lazily, and reopened once when the
broker connection is lost.

The URI is resolved (uri.resolve, once per Broker) and connected on first use,
with a bounded connect time for ssh:// (remote.py). One Broker serves every
cycle of a study: its owner is the study's state (maestro/study_state.py), so
that Maestro rebuilding the adapter two or three times per cycle costs nothing.
While the broker cannot be reached, each use fails fast with one line naming
the URI and host, and the outage is logged when it starts and when it ends.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from maestro_flux.broker import bindings, cancel, listing, remote, submit
from maestro_flux.broker import inventory as inventories
from maestro_flux.broker import queues as queue_lookup
from maestro_flux.broker import uri as uris
from maestro_flux.broker.remote import DEFAULT_CONNECT_TIMEOUT
from maestro_flux.model.bounded import Bounded
from maestro_flux.model.errors import BrokerError, MaestroFluxError
from maestro_flux.model.inventory import Inventory
from maestro_flux.model.listing_grace import ListingGrace
from maestro_flux.model.notices import Notices
from maestro_flux.model.queues import BrokerQueues
from maestro_flux.model.states import JobStatus, status_from_listing

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

#: errnos that mean the connection itself is gone, not that a request failed.
LOST_CONNECTION = {errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNREFUSED,
                   errno.ENOSYS, errno.EHOSTUNREACH, errno.ETIMEDOUT}
#: Jobs that go inactive between two polls are caught by asking for a little
#: more than the time since the last poll.
POLL_SLACK = 5.0
#: Jobs in flight whose request is remembered for their end's message (oldest forgotten).
MAX_ASKS = 100_000


@dataclass
class Broker:
    """One broker, as seen from this process."""

    uri: str | None
    timeout: float = DEFAULT_CONNECT_TIMEOUT
    notices: Notices = field(default_factory=Notices)
    _handle: Any = None
    _resolution: uris.Resolution | None = None
    _ssh_wrapper: tuple[str, int, str] | None = None  # (ssh, seconds, wrapper path)
    _guest: bool | None = None
    _last_poll: float | None = None
    _final: dict[int, JobStatus] = field(default_factory=dict)
    #: The last poll's answer (active jobs, and those that ended since the one before).
    _recent: dict[int, JobStatus] = field(default_factory=dict)
    _down_since: float | None = None
    #: Ids this process was asked to cancel: if the broker is gone, they count
    #: as canceled, so that ``maestro cancel`` still ends the study.
    cancel_requested: set[int] = field(default_factory=set)
    #: Ids this Broker submitted: a job the study's current broker does not know
    #: but another Broker submitted was lost with that one (flux_uri_file).
    submitted: set[int] = field(default_factory=set)
    #: What each job submitted here asked for, in words, until its end is reported:
    #: a scheduler's "unsatisfiable" note may not say (Fluxion's does not).
    _asks: Bounded[int, str] = field(default_factory=lambda: Bounded(MAX_ASKS))
    _inventory: Inventory | None = None
    #: The broker's named queues, looked up once per study (model/queues.py).
    _queues: BrokerQueues | None = None
    #: Jobs submitted here that job-list has not listed yet (model/listing_grace.py).
    listing_grace: ListingGrace = field(default_factory=ListingGrace)

    @property
    def label(self) -> str:
        return self.uri or "the system instance"

    def target(self) -> str | None:
        """The URI to connect to: ``uri`` resolved (once), None for the default."""
        if not self.uri:
            return None
        if self._resolution is None:
            self._resolution = uris.resolve(self.uri)
        return self._resolution.uri

    def handle(self) -> Any:
        """The open handle, resolving and connecting on first use."""
        if self._handle is None:
            try:
                self._handle = self._connect(self.target())
            except BrokerError as err:
                self._went_down(str(err))
                raise
            self._came_back()
        return self._handle

    def _connect(self, target: str | None) -> Any:
        where = self.label if target in (None, self.uri) else f"{self.label} ({target})"
        if remote.is_ssh(target):
            where += f" on host {remote.ssh_host(target)}"
            LOGGER.info("maestro-flux: connecting to %s (timeout %gs)", where, self.timeout)
        try:
            with self._ssh_environment(target):
                return bindings.connect(target)
        except OSError as err:
            reason = uris.one_line(err.strerror or err).removeprefix("Unable to connect to Flux: ")
            hint = remote.unreachable_hint(target or "", reason, self.timeout)
            raise BrokerError(f"cannot connect to Flux at {where}: {reason}; {hint}") from None

    def _ssh_environment(self, target: str | None) -> contextlib.AbstractContextManager:
        """FLUX_SSH pointed at a wrapper that bounds ssh's connect time, while connecting."""
        if not remote.is_ssh(target):
            return contextlib.nullcontext()
        ssh = remote.ssh_program()
        if os.path.basename(ssh) != "ssh":
            self.notices.log_once(LOGGER, logging.INFO, f"ssh-unbounded:{ssh}",
                                  "maestro-flux: FLUX_SSH=%s is not ssh, so connect_timeout "
                                  "is left to it", ssh)
            return contextlib.nullcontext()
        seconds = remote.whole_seconds(self.timeout)
        if self._ssh_wrapper is None or self._ssh_wrapper[:2] != (ssh, seconds):
            self._ssh_wrapper = (ssh, seconds, remote.ssh_wrapper(ssh, seconds))
        return remote.flux_ssh(self._ssh_wrapper[2])

    def _went_down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = time.time()
            LOGGER.warning("maestro-flux: Flux at %s is unreachable: %s. Job ids are kept; "
                           "steps keep their state and are polled again every cycle",
                           self.label, reason)

    def _came_back(self) -> None:
        if self._down_since is not None:
            LOGGER.warning("maestro-flux: Flux at %s is reachable again after %.0fs; "
                           "polling resumes", self.label, time.time() - self._down_since)
            self._down_since = None

    def call(self, operation: Callable[[Any], T]) -> T:
        """Run ``operation(handle)``, reconnecting once if the connection was lost."""
        try:
            return operation(self.handle())
        except OSError as err:
            if err.errno not in LOST_CONNECTION:
                raise
            LOGGER.warning("maestro-flux: Flux connection to %s lost (%s); reconnecting once",
                           self.label, err.strerror or err)
            self._handle = None
            try:
                return operation(self.handle())
            except OSError as again:
                if again.errno in LOST_CONNECTION:
                    self._handle = None
                    self._went_down(again.strerror or str(again))
                raise

    def is_guest(self) -> bool:
        """True if we are not the instance owner, so urgency > 16 and waitable are refused."""
        if self._guest is None:
            owner = self.call(lambda h: bindings.attr(h, "security.owner"))
            self._guest = int(owner) != os.getuid()
            if self._guest:
                LOGGER.info("maestro-flux: submitting to %s as a guest: urgency is capped at 16",
                            self.label)
        return self._guest

    def submit_async(self, jobspec: Any, urgency: int, flags: Iterable[str] = ()) -> Any:
        """Send a submit request without waiting for the id (maestro/submissions.py
        takes the answer). Not retried on a lost connection: a lost answer is looked
        for by the job's token instead."""
        return submit.submit_async(self.handle(), jobspec, urgency, flags)

    def submit_get_id(self, future: Any, asks: str | None = None) -> int:
        """The id of a sent job (waits for the answer); remembered as this broker's,
        with what it asked for (``asks``) until ``asks_of`` reports it."""
        jobid = submit.submit_get_id(future)
        self.submitted.add(jobid)
        self.listing_grace.submitted(jobid, time.time())
        if asks:
            self._asks.put(jobid, asks)
        return jobid

    def asks_of(self, jobid: int) -> str | None:
        """What a job submitted here asked for; forgotten once asked (its end is told)."""
        return self._asks.pop(jobid)

    def statuses(self, jobids: Iterable[int],
                 max_age: float = 0.0) -> dict[int, JobStatus | None]:
        """Status of each id from one job-list request (None: unknown to the broker).

        Inactive jobs never change, so their status is remembered and later
        polls ask only for jobs that went inactive since the previous poll. With
        ``max_age``, the last poll's answer serves if it is that recent and lists them
        all (a study of thousands of jobs is not listed three times a cycle).
        """
        wanted = set(jobids)
        missing = wanted - self._final.keys()
        last = self._last_poll
        if max_age and last is not None and time.time() - last <= max_age \
                and missing <= self._recent.keys():
            return {jobid: self._final.get(jobid) or self._recent[jobid] for jobid in wanted}
        found = self._poll(last) if missing else {}
        if missing - found.keys() and last is not None:
            found = self._poll(None)  # an id we never saw: ask for the whole history once
        return {jobid: self._final.get(jobid) or found.get(jobid) for jobid in wanted}

    def _poll(self, last: float | None) -> dict[int, JobStatus]:
        started = time.time()
        since = max(0.0, last - POLL_SLACK) if last is not None else 0.0
        entries = self.call(lambda h: listing.list_jobs(h, since))
        self._last_poll = started
        found = {}
        for entry in entries:
            status = status_from_listing(entry)
            found[int(entry["id"])] = status
            if status.state == "INACTIVE":
                self._final[int(entry["id"])] = status
        self.listing_grace.listed(found)
        self._recent = found
        return found

    def awaiting_listing(self, jobid: int) -> bool:
        """True if this process submitted ``jobid`` here, job-list has not listed it
        yet, and its grace period (model/listing_grace.py) has not run out."""
        return self.listing_grace.waiting(jobid, time.time())

    def queues(self) -> BrokerQueues:
        """The broker's named queues, asked once per study; not-checked (with the
        reason) while the broker cannot be reached, and asked again next time."""
        if self._queues is None:
            try:
                handle = self.handle()
            except MaestroFluxError as err:  # unreachable, or no bindings (a dry run)
                return BrokerQueues(None, f"cannot ask {self.label}: {err}")
            self._queues = queue_lookup.lookup_queues(handle)
            LOGGER.info("maestro-flux: queues of %s: %s (from %s)", self.label,
                        self._queues.describe(), self._queues.how)
        return self._queues

    def inventory(self) -> Inventory:
        """The instance's nodes, cores and GPUs, asked once per study (when needed)."""
        if self._inventory is None or self._inventory.nodes is None:
            try:
                self._inventory = self.call(inventories.inventory)
            except (MaestroFluxError, OSError) as err:
                return Inventory(None, why=f"cannot ask {self.label}: {err}")
        return self._inventory

    def cancel(self, jobids: Iterable[int], reason: str) -> dict[int, OSError | None]:
        """Cancel all ids in one pass; jobid -> error (None when canceled)."""
        jobids = list(jobids)
        self.cancel_requested.update(jobids)
        return self.call(lambda h: cancel.cancel_all(h, jobids, reason))

