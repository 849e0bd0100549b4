"""Finding a job by the identity it carries (``attributes.user.maestro_flux``).

A submission whose id never reached the study's journal (the conductor was killed
between the broker's answer and the write) is found again by its token: among this
user's jobs named like the study's steps and submitted since the study began, the
one whose jobspec carries the token. ``job-list`` gives the candidates in one
request; each candidate's jobspec is read with ``job-info.lookup``, which any user,
guest or owner, may do for their own jobs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from maestro_flux.broker.jobspec import IDENTITY

#: job-list's submit time is the broker's clock: allow for a little skew.
CLOCK_SLACK = 60.0


def candidates(handle: Any, names: Iterable[str], since: float) -> list[int]:
    """Ids of this user's jobs with one of ``names``, submitted after ``since``."""
    wanted = set(names)
    payload = {"max_entries": 0, "attrs": ["name", "t_submit"], "since": 0.0,
               "constraint": {"and": [{"userid": [os.getuid()]}]}}
    jobs = handle.rpc("job-list.list", payload).get()["jobs"]
    return [int(job["id"]) for job in jobs
            if job.get("name") in wanted and job.get("t_submit", 0) >= since - CLOCK_SLACK]


def identity_of(handle: Any, jobid: int) -> dict[str, Any]:
    """The maestro-flux identity a job carries ({} if none)."""
    answer = handle.rpc("job-info.lookup", {"id": jobid, "keys": ["jobspec"],
                                            "flags": 0}).get()
    jobspec = answer["jobspec"]
    if isinstance(jobspec, str):
        jobspec = json.loads(jobspec)
    node = jobspec.get("attributes", {})
    for part in IDENTITY.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def find_tokens(handle: Any, tokens: Iterable[str], names: Iterable[str],
                since: float) -> dict[str, int]:
    """token -> job id, for the ``tokens`` found among the candidate jobs."""
    wanted, found = set(tokens), {}
    if not wanted:
        return found
    for jobid in candidates(handle, names, since):
        token = identity_of(handle, jobid).get("token")
        if token in wanted:
            found[token] = jobid
            if len(found) == len(wanted):
                break
    return found
