"""Finding a job by the identity it carries (model/records.py, ``Identity``).

A submission whose id never reached the study's journal (the conductor was killed
between the broker's answer and the write, or the answer itself was lost) is found
again by its token. The search is bounded:

- the candidates come from one ``job-list`` request, for this user's jobs submitted
  since the study began (less :data:`CLOCK_SLACK`), named like the study's steps
  (the name constraint is sent when the names are few, and checked here otherwise);
- each candidate's jobspec is read with ``job-info.lookup`` (open to guests for
  their own jobs), :data:`WINDOW` requests in flight at once;
- it stops as soon as every token is found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from maestro_flux.model.records import IDENTITY_PATH, Identity, identity_from

#: job-list's submit time is the broker's clock: allow for a little skew.
CLOCK_SLACK = 60.0
#: At most this many names go to job-list in the request (it matches each job against
#: each name, one by one); more are matched here.
MAX_NAMES_IN_REQUEST = 64
#: job-info.lookup requests in flight at once.
WINDOW = 256


def candidates(handle: Any, names: Iterable[str], since: float) -> list[int]:
    """Ids of this user's jobs named one of ``names``, submitted after ``since`` (less
    the slack), newest first."""
    wanted = set(names)
    terms: list[dict] = [{"userid": [os.getuid()]}]
    if since > 0:
        terms.append({"t_submit": [f">={since - CLOCK_SLACK}"]})
    if wanted and len(wanted) <= MAX_NAMES_IN_REQUEST:
        terms.append({"name": sorted(wanted)})
    payload = {"max_entries": 0, "attrs": ["name", "t_submit"], "since": 0.0,
               "constraint": {"and": terms}}
    jobs = handle.rpc("job-list.list", payload).get()["jobs"]
    return [int(job["id"]) for job in jobs
            if (not wanted or job.get("name") in wanted)
            and job.get("t_submit", 0) >= since - CLOCK_SLACK]


def _lookup(handle: Any, jobid: int) -> Any:
    return handle.rpc("job-info.lookup", {"id": jobid, "keys": ["jobspec"], "flags": 0})


def _identity(answer: dict, jobid: int) -> Identity | None:
    jobspec = answer["jobspec"]
    if isinstance(jobspec, str):
        jobspec = json.loads(jobspec)
    node: Any = jobspec.get("attributes", {})
    for part in IDENTITY_PATH.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return identity_from(node, f"job {jobid}")


def identity_of(handle: Any, jobid: int) -> Identity | None:
    """The maestro-flux identity a job carries (None if none)."""
    return _identity(_lookup(handle, jobid).get(), jobid)


def find_tokens(handle: Any, tokens: Iterable[str], names: Iterable[str], since: float,
                progress: Callable[[int, int, int], None] | None = None) -> dict[str, int]:
    """token -> job id, for the ``tokens`` found among the candidate jobs.

    ``progress(looked_up, candidates, found)`` is called after each window of lookups.
    A job that cannot be looked up (purged meanwhile) is skipped.
    """
    wanted, found = set(tokens), {}
    if not wanted:
        return found
    jobs = candidates(handle, names, since)
    for start in range(0, len(jobs), WINDOW):
        window = [(jobid, _lookup(handle, jobid)) for jobid in jobs[start:start + WINDOW]]
        for jobid, future in window:
            try:
                identity = _identity(future.get(), jobid)
            except OSError:
                continue
            if identity is not None and identity.token in wanted:
                found[identity.token] = jobid
        if progress is not None:
            progress(min(start + WINDOW, len(jobs)), len(jobs), len(found))
        if len(found) == len(wanted):
            break
    return found
