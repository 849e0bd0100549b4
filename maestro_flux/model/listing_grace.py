"""Jobs we submitted that job-list does not list yet.

The job manager answers a submission before job-list, which follows the job
manager's journal, has seen the job: right after a cycle submits many steps, a
poll can miss some of them. Maestro fails the whole subtree of an UNKNOWN step
(while the job runs on), so a job this conductor submitted and got an id for is
reported PENDING while it is missing from job-list, for at most
``LISTING_GRACE`` seconds after its submission; only then is it UNKNOWN.

Pure bookkeeping, bounded in size: the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from maestro_flux.model.bounded import Bounded

#: Seconds after its submission that a job missing from job-list is still
#: reported PENDING. job-list usually catches up within a second, even after
#: thousands of submissions; this is far above that and still bounds how long a
#: truly lost job is shown as waiting.
LISTING_GRACE = 120.0
#: Submissions remembered at most; the oldest are forgotten first (they are
#: long past the grace period in any study that submits this many).
MAX_REMEMBERED = 100_000


@dataclass
class ListingGrace:
    """When each job this process submitted was accepted, until job-list lists it."""

    grace: float = LISTING_GRACE
    limit: int = MAX_REMEMBERED
    _submitted: Bounded[int, float] = field(init=False)

    def __post_init__(self) -> None:
        self._submitted = Bounded(self.limit)

    def submitted(self, jobid: int, now: float) -> None:
        """Remember that the broker accepted ``jobid`` at ``now``."""
        self._submitted.put(jobid, now)

    def listed(self, jobids: Collection[int]) -> None:
        """Forget ids job-list has listed: they no longer need the grace. (A poll lists
        every active job, often thousands; the smaller side is walked.)"""
        if len(self._submitted) < len(jobids):
            jobids = [jobid for jobid in self._submitted if jobid in jobids]
        for jobid in jobids:
            self._submitted.pop(jobid)

    def waiting(self, jobid: int, now: float) -> bool:
        """True if ``jobid`` is ours and still within its grace period."""
        when = self._submitted.get(jobid)
        return when is not None and now - when < self.grace

    def __contains__(self, jobid: object) -> bool:
        """True if this process submitted ``jobid`` and job-list has not listed it yet."""
        return jobid in self._submitted

    def __len__(self) -> int:
        return len(self._submitted)
