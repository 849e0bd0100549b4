"""Cancelling many jobs in one reactor pass."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maestro_flux.broker.bindings import bindings


def cancel_all(handle: Any, jobids: Iterable[int], reason: str) -> dict[int, OSError | None]:
    """Cancel many jobs in one reactor pass, without a round trip per job.

    Returns:
        jobid -> None if canceled, else the OSError the broker answered.
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
    return outcome
