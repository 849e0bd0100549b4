"""A conductor cycle's ready steps, submitted together.

Maestro 1.2.1 calls ``adapter.submit`` once per ready step and needs the job id
back before it writes the next step's script, so every step waits a whole broker
ingest round trip (about 27 ms on flux-core 0.88, 10 ms of it job-ingest's batch
window): at most ~38 steps/s, whatever the adapter does. The broker ingests
pipelined requests ten times faster, but Maestro's adapter API has no way to hand
over several steps at once.

So, for graphs whose adapter is maestro-flux, we change where the waiting happens,
not what is recorded. In ``ExecutionGraph._execute_record`` each ready step's
workspace and script are made exactly as Maestro makes them, and its job is
*sent* at once (``submit_async``) without waiting; when Maestro's loop is done
(``_check_study_completion``, the last call of ``execute_ready_steps``), every id
is collected and recorded on its step (``mark_submitted``, ``jobid``,
``in_progress``), before the cycle returns. Maestro pickles the graph and writes
``status.csv`` only after the cycle returns, so what it stores and shows is the
same as with one submit per step: real Flux ids, recorded in the cycle that
submitted them. A step whose job could not be sent or was refused goes through
Maestro's own ``_execute_record`` instead (one ``submit``, its retries, its
failure marking), so errors look exactly as before.

If the conductor dies mid-cycle, jobs the broker accepted in that cycle are not
in the pickle: that is true of Maestro's one-at-a-time loop too (it pickles once
per cycle), and sending together makes the window shorter, not longer.

``MAESTRO_FLUX_PIPELINE=0`` turns this off (one submit per step, as Maestro does).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

LOGGER = logging.getLogger(__name__)
SWITCH = "MAESTRO_FLUX_PIPELINE"
#: The ExecutionGraph methods we wrap or call; without them we leave Maestro alone.
NEEDED = ("_execute_record", "_check_study_completion", "_check_tmp_dir")
#: Where a graph keeps its sent steps during a cycle (removed before Maestro pickles).
PENDING = "_maestro_flux_sent"
_INSTALLED: bool | None = None


@dataclass
class Sent:
    """A ready step whose script is written, and its job's submit request (None: not sent)."""

    record: Any
    adapter: Any
    request: Any


def installed() -> bool:
    from maestrowf.datastructures.core.executiongraph import ExecutionGraph

    return getattr(ExecutionGraph, "_maestro_flux_pipeline", False)


def install() -> bool:
    """Wrap two ExecutionGraph methods (idempotent); False if switched off or not possible.

    Called when our adapter is constructed, which Maestro does at the start of every
    cycle, before its submission loop: both methods are looked up when called, so
    the wrapping already applies to that cycle. (Not at registration: Maestro scans
    adapters while executiongraph.py is still being imported.)
    """
    global _INSTALLED
    if _INSTALLED is not None:
        return _INSTALLED
    _INSTALLED = False
    if os.environ.get(SWITCH, "1") == "0":
        return False
    from maestrowf.datastructures.core.executiongraph import ExecutionGraph

    if not all(hasattr(ExecutionGraph, name) for name in NEEDED):
        LOGGER.info("maestro-flux: this Maestro's ExecutionGraph is unfamiliar; "
                    "submitting one step at a time")
        return False
    _wrap(ExecutionGraph)
    _INSTALLED = True
    return True


def _wrap(graph_class: type) -> None:
    execute_record = graph_class._execute_record
    check_completion = graph_class._check_study_completion

    def _execute_record(self: Any, record: Any, adapter: Any, restart: bool = False) -> None:
        from maestro_flux.maestro.adapter import FluxAdapter

        if restart or self.dry_run or not isinstance(adapter, FluxAdapter):
            return execute_record(self, record, adapter, restart)
        self._check_tmp_dir()
        record.setup_workspace()
        record.generate_script(adapter, self._tmp_dir)
        if not record.to_be_scheduled:
            return execute_record(self, record, adapter, restart)
        request = adapter.send(record.step, record.script, record.workspace.value)
        self.__dict__.setdefault(PENDING, []).append(Sent(record, adapter, request))
        return None

    def _check_study_completion(self: Any) -> Any:
        # The end of Maestro's cycle, before it pickles the graph: record every id.
        sent = self.__dict__.pop(PENDING, None)  # never left on the pickled graph
        if sent:
            _collect(self, sent, execute_record)
        return check_completion(self)

    graph_class._execute_record = _execute_record
    graph_class._check_study_completion = _check_study_completion
    graph_class._maestro_flux_pipeline = True


def _collect(graph: Any, sent: list[Sent], execute_record: Any) -> None:
    """Record every sent step's id, as Maestro's own submission would have."""
    for item in sent:
        jobid = None
        if item.request is not None:
            jobid = item.adapter.receive(item.record.step, item.request)
        if jobid is None:
            execute_record(graph, item.record, item.adapter)  # one submit, Maestro's way
            continue
        item.record.mark_submitted()
        item.record.jobid.append(jobid)
        graph.in_progress.add(item.record.name)
    if sent:
        LOGGER.info("maestro-flux: %d step(s) sent together this cycle", len(sent))
