"""Job submission: ``submit_async`` sends, ``submit_get_id`` reads the answer
(flux.job's own names); ``submit`` is the two together."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maestro_flux.broker.bindings import bindings
from maestro_flux.broker.jobspec import split_commas


def submit_async(handle: Any, jobspec: Any, urgency: int, flags: Iterable[str] = ()) -> Any:
    """Send one submit request without waiting; ``submit_get_id`` reads its answer."""
    # flux_options checked the flag names when the options were read.
    kwargs = {flag: True for flag in split_commas(flags)}
    return bindings().job.submit_async(handle, jobspec, urgency=urgency, **kwargs)


def submit_get_id(future: Any) -> int:
    """The id the broker assigned to a ``submit_async`` request (waits for it)."""
    return int(future.get_id())


def submit(handle: Any, jobspec: Any, urgency: int, flags: Iterable[str] = ()) -> int:
    """Submit one jobspec and wait for its id (one ingest round trip)."""
    return submit_get_id(submit_async(handle, jobspec, urgency, flags))
