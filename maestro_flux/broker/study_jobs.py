"""What Flux knows of a study's jobs, for ``maestro-flux status`` and ``report``.

- :func:`offered_attrs` asks job-list which attributes it has (``job-list.list-attrs``,
  every supported flux-core): all of 0.61.2 to 0.88 list the times t_submit, t_depend,
  t_run, t_cleanup and t_inactive, nnodes, nodelist, queue and ``dependencies`` (the
  dependencies still outstanding); 0.88 adds t_priority (the moment the dependencies
  were met) and t_sched. Only offered attributes are asked for: job-list refuses the
  whole request for one it does not know (src/modules/job-list/job_util.c).
- :func:`list_jobs` is one ``job-list.list`` request for all of this user's jobs
  active or ended since the study began, whatever their number.
- :func:`eventlogs` reads jobs' eventlogs (``job-info.lookup``, which a guest may do
  for its own jobs), pipelined (:mod:`maestro_flux.broker.in_flight`), so 10,000 jobs cost
  10,000 small answers and not 10,000 round trips. The report reads them on brokers
  whose job-list has no t_priority, for the time each job's dependencies were met.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from maestro_flux.broker.in_flight import WINDOW, in_flight

#: Attributes asked for when job-list offers them.
WANTED = ("state", "result", "queue", "nnodes", "nodelist", "t_submit", "t_depend",
          "t_priority", "t_sched", "t_run", "t_cleanup", "t_inactive", "exception_occurred",
          "exception_type", "exception_note", "waitstatus", "dependencies", "name")

#: What every supported job-list lists (0.61.2 on), should list-attrs be refused.
EVERYWHERE = frozenset(WANTED) - {"t_priority", "t_sched"}


def offered_attrs(handle: Any) -> set[str]:
    """The attributes this broker's job-list can list (those every supported version
    lists, where the broker will not say)."""
    try:
        return set(handle.rpc("job-list.list-attrs").get()["attrs"])
    except OSError:
        return set(EVERYWHERE)


def list_jobs(handle: Any, since: float, attrs: Iterable[str]) -> dict[int, dict]:
    """job id -> raw job-list entry, for this user's jobs active now or ended after
    ``since``, with ``attrs`` (those job-list offers: :func:`offered_attrs`)."""
    payload = {"max_entries": 0, "attrs": sorted(attrs), "since": since,
               "constraint": {"and": [{"userid": [os.getuid()]}]}}
    jobs = handle.rpc("job-list.list", payload).get()["jobs"]
    return {int(entry["id"]): entry for entry in jobs}


def parse_eventlog(text: str) -> list[dict]:
    """An eventlog's lines (RFC 18: one JSON object a line) as dicts; a bad line is
    skipped."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def eventlogs(handle: Any, ids: Iterable[int], window: int = WINDOW) -> dict[int, list[dict]]:
    """job id -> its eventlog's events, for each of ``ids`` the broker still has (a job
    it purged, or another user's, is left out)."""
    found: dict[int, list[dict]] = {}
    lookups = in_flight(ids, lambda jobid: handle.rpc("job-info.lookup", {
        "id": jobid, "keys": ["eventlog"], "flags": 0}), window)
    for jobid, future in lookups:
        try:
            answer = future.get()
        except OSError:
            continue
        text = answer.get("eventlog")
        if isinstance(text, str):
            found[jobid] = parse_eventlog(text)
        elif isinstance(text, list):  # asked decoded by a newer client
            found[jobid] = [event for event in text if isinstance(event, dict)]
    return found
