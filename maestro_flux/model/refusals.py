"""A broker's refusal of a job at submission, as one line a person can act on.

The broker's own words come first. Where they do not say what is missing, what the
instance has and what the step asks for are added: a scheduler's feasibility check
(Fluxion's, with ``[ingest.validator] plugins = ["jobspec", "feasibility"]`` as
production systems configure it) refuses with just "Unsatisfiable request" (ENODEV),
whether the step asked for more nodes, cores or GPUs than the instance has.
"""

from __future__ import annotations

import errno

from maestro_flux.model.inventory import Inventory

#: errnos that mean "this instance can never run it": the line then says what the
#: instance has (``resource.status``) and what the step asks for.
UNSATISFIABLE = {errno.ENODEV}


def refusal(err: Exception, asks: str | None = None, has: Inventory | None = None) -> str:
    """``Flux refused the job: REASON``; for an unsatisfiable request, with what the
    instance has and what the step asks for."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    line = f"Flux refused the job: {reason}"
    if getattr(err, "errno", None) in UNSATISFIABLE:
        parts = [f"the instance has {has.describe()}" if has and has.nodes is not None else "",
                 f"the step asks for {asks}" if asks else ""]
        if any(parts):
            line += ": " + "; ".join(filter(None, parts))
    return line
