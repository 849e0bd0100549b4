"""Cancelling many jobs in one reactor pass."""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any

from maestro_flux.broker import listing
from maestro_flux.broker.bindings import bindings


def cancel_all(handle: Any, jobids: Iterable[int], reason: str) -> dict[int, OSError | None]:
    """Cancel many jobs in one reactor pass, without a round trip per job.

    The job manager answers ENOENT both for a job that already ended and for an id
    it never had, in words that change between flux-core versions; one job-list
    request tells the two apart (a job it lists was real, so it has ended).

    Returns:
        jobid -> None if canceled or already ended, else the OSError the broker answered.
    """
    job = bindings().job
    outcome: dict[int, OSError | None] = {}

    def done(future: Any, jobid: int) -> None:
        try:
            future.get()
            outcome[jobid] = None
        except OSError as err:
            outcome[jobid] = err

    for jobid in jobids:
        job.cancel_async(handle, jobid, reason).then(done, jobid)
    handle.reactor_run()
    gone = {jobid for jobid, err in outcome.items() if err and err.errno == errno.ENOENT}
    if gone:
        known = {int(entry["id"]) for entry in listing.list_jobs(handle)}
        outcome.update({jobid: None for jobid in gone & known})
    return outcome
