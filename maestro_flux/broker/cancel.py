"""Cancelling many jobs, all requests sent before the first answer is read."""

from __future__ import annotations

import errno
import pwd
from collections.abc import Iterable
from typing import Any

from maestro_flux.broker import listing
from maestro_flux.broker.bindings import bindings
from maestro_flux.broker.in_flight import in_flight


def cancel_all(handle: Any, jobids: Iterable[int], reason: str) -> dict[int, OSError | None]:
    """Cancel many jobs without a round trip per job.

    The job manager answers ENOENT both for a job that already ended and for an id
    it never had, in words that change between flux-core versions; one job-list
    request tells the two apart (a job it lists was real, so it has ended).

    A guest may cancel only its own jobs; the job manager's refusal ("guests can
    only raise exceptions on their own jobs") is replaced by one that names the
    job's owner, asked of job-list (which answers guests about any job).

    Returns:
        jobid -> None if canceled or already ended, else the OSError the broker answered.
    """
    job = bindings().job
    # Answers are read with get(), never the handle's reactor: libflux drops the
    # responses a reactor run reads for a stream with no callback, which is the wait's
    # journal on this same handle (measured on real 0.76 and 0.88).
    outcome: dict[int, OSError | None] = {}
    for jobid, future in in_flight(jobids, lambda jobid: job.cancel_async(handle, jobid, reason)):
        try:
            future.get()
            outcome[jobid] = None
        except OSError as err:
            outcome[jobid] = err
    gone = {jobid for jobid, err in outcome.items() if err and err.errno == errno.ENOENT}
    if gone:
        known = {int(entry["id"]) for entry in listing.list_jobs(handle)}
        outcome.update({jobid: None for jobid in gone & known})
    for jobid, err in outcome.items():
        if err is not None and err.errno == errno.EPERM:
            outcome[jobid] = _not_yours(handle, jobid, err)
    return outcome


def _not_yours(handle: Any, jobid: int, err: OSError) -> OSError:
    """The refusal to cancel another user's job, naming its owner if job-list says."""
    try:
        owner = listing.owner_of(handle, jobid)
    except OSError:
        return err
    try:
        who = f"owner: {pwd.getpwuid(owner).pw_name}, uid {owner}"
    except KeyError:  # a uid this machine has no name for
        who = f"owner: uid {owner}"
    return OSError(errno.EPERM, f"it is another user's job ({who}); only they or the "
                                "instance owner can cancel it")
