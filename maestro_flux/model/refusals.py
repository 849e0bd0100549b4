"""A broker's refusal of a job at submission, as one line a person can act on.

The broker's own words come first. Where they leave out what was asked, the
step's request is added: a scheduler's feasibility check (Fluxion's, with
``[ingest.validator] plugins = ["jobspec", "feasibility"]`` as production systems
configure it) refuses with just "Unsatisfiable request" (ENODEV), whether the step
asked for more nodes, cores or GPUs than the instance has.
"""

from __future__ import annotations

import errno

#: errno -> what it means for the step, when the broker says no more.
EXPLAINED = {
    errno.ENODEV: "this instance has no resources that could ever satisfy it",
}


def refusal(err: Exception, asks: str | None = None) -> str:
    """``Flux refused the job: REASON`` (and, for ENODEV, what the step asked for)."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    line = f"Flux refused the job: {reason}"
    meaning = EXPLAINED.get(getattr(err, "errno", None))
    if meaning:
        line += f": {meaning}" + (f" (the step asks for {asks})" if asks else "")
    return line
