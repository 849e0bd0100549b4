"""A conductor cycle's ready steps, submitted together, and none of them lost.

Maestro 1.2 calls ``adapter.submit`` once per ready step and waits for the job
id before it writes the next step's script, so every step waits a whole broker
ingest round trip (about 27 ms on flux-core 0.88): at most ~38 steps/s, however
fast the adapter. The broker ingests pipelined requests ten times faster.

So we wrap the cycle, ``ExecutionGraph.execute_ready_steps``, and change where
the waiting happens, not what is recorded:

1. The wrapper opens a :class:`Cycle` on the study's state. While it is open,
   ``FluxAdapter.submit`` sends the job (``submit_async``) and returns at once
   with a placeholder id, which Maestro stores on the step as it would a real one.
2. In a ``finally``, whether Maestro's loop returned or raised, every sent job's
   answer is read (``submit_get_id``) and the real id replaces the placeholder.
   A refused job is logged with the broker's reason and its step and subtree
   fail, as Maestro fails a step whose submit failed. An accepted job's step is
   in ``in_progress`` whatever Maestro got to before raising, so it is polled.

Maestro pickles the graph and writes ``status.csv`` only after the cycle returns,
so what it stores and shows is what one submit per step stores: real Flux ids.
If the conductor process itself dies mid-cycle, jobs accepted in that cycle are
in no pickle; Maestro's own loop has that window too (it pickles once a cycle).

The wrapper also stamps the graph's batch block with an id of the study's own
(study_state.STUDY_KEY), so that every adapter Maestro builds from it finds the
same StudyState. It is enabled only on the maestrowf versions in
maestro_names.TESTED_VERSIONS and when every name in maestro_names exists; else,
or with ``MAESTRO_FLUX_PIPELINE=0``, Maestro's loop runs untouched (one submit
per step) and the log says why, once.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import shutil
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from maestro_flux.broker.connection import Broker
from maestro_flux.maestro import ahead, maestro_names, resubmit
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.journal import conductor_options
from maestro_flux.maestro.maestro_imports import import_maestro
from maestro_flux.maestro.study_state import STUDIES, STUDY_KEY
from maestro_flux.model import jobids
from maestro_flux.model.refusals import UNSATISFIABLE, refusal

LOGGER = logging.getLogger(__name__)
SWITCH = "MAESTRO_FLUX_PIPELINE"
GRAPH_MODULE = "maestrowf.datastructures.core.executiongraph"
#: Set on ExecutionGraph once wrapped: the class itself records that it is.
MARK = "_maestro_flux_pipeline"
PLACEHOLDER = "maestro-flux-pending-"
#: The last whole graph pickle, kept beside the journal (Conductor._note).
PICKLE_BACKUP = "graph.pkl"
#: Rounds per conductor cycle at most, while Flux keeps ending polled jobs.
MAX_ROUNDS = 64
#: Maestro states (names) of a job that has ended, for the catch-up rounds.
ENDED = frozenset(("FINISHED", "FAILED", "CANCELLED", "TIMEDOUT", "HWFAILURE", "UNKNOWN"))


@dataclass
class Sent:
    """One step's job, sent and not yet answered."""

    step_name: str
    placeholder: str
    future: Any
    broker: Broker
    asks: str | None = None  # what the step asks for, in words, for a refusal's line
    token: str | None = None  # its journal token (journal.py), if the study has a journal


@dataclass
class Cycle:
    """The jobs sent during one conductor cycle, until their ids are recorded."""

    sent: list[Sent] = field(default_factory=list)

    def add(self, step_name: str, future: Any, broker: Broker, asks: str | None = None,
            token: str | None = None) -> str:
        """Remember a sent job; returns the placeholder id Maestro records for now."""
        placeholder = f"{PLACEHOLDER}{uuid.uuid4().hex[:12]}"
        self.sent.append(Sent(step_name, placeholder, future, broker, asks, token))
        return placeholder

    def answers(self) -> Iterator[tuple[Sent, str | Exception]]:
        """Each sent job with its ASCII f58 id, or the error the broker answered."""
        for sent in self.sent:
            try:
                yield sent, jobids.f58_encode(sent.broker.submit_get_id(sent.future, sent.asks))
            except Exception as err:  # refused, or the connection went: one line each
                yield sent, err

    def record(self, graph: Any, journal: Any = None) -> None:
        """Put every answered id on its step (in the journal first); fail the steps whose
        job was refused. One job's failure here never loses another's id."""
        failed = import_maestro("maestrowf.abstracts.enums").State.FAILED
        for sent, jobid in self.answers():
            try:
                self._record_one(graph, sent, jobid, failed, journal)
            except Exception as err:  # the journal has it; resume picks it up
                LOGGER.error("maestro-flux: could not record step '%s' (%s: %s); "
                             "'maestro-flux resume' finds its job", sent.step_name,
                             type(err).__name__, err)
        if self.sent:
            LOGGER.info("maestro-flux: %d step(s) sent together this cycle", len(self.sent))


    @staticmethod
    def _record_one(graph: Any, sent: Sent, jobid: str | Exception, failed: Any,
                    journal: Any) -> None:
        record = graph.values[sent.step_name]
        if isinstance(jobid, Exception):
            _refused(graph, record, sent, jobid, failed)
            return
        if journal is not None and sent.token:
            journal.submitted(sent.step_name, sent.token, jobid)
        _replace(record.jobid, sent.placeholder, jobid)
        # the id -> step map that bounds retries after node failures (model/retries.py)
        STUDIES.for_block(graph._adapter).node_failures.known(jobid, sent.step_name)
        graph.in_progress.add(sent.step_name)
        LOGGER.info("maestro-flux: submitted step '%s' as Flux job %s", sent.step_name, jobid)


def _replace(ids: list, placeholder: str, jobid: str) -> None:
    if placeholder in ids:
        ids[ids.index(placeholder)] = jobid
    else:  # Maestro raised before it stored the placeholder
        ids.append(jobid)


def _refused(graph: Any, record: Any, sent: Sent, err: Exception, failed: Any) -> None:
    has = (sent.broker.inventory() if getattr(err, "errno", None) in UNSATISFIABLE else None)
    LOGGER.error("maestro-flux: step '%s' was not submitted: %s", sent.step_name,
                 refusal(err, sent.asks, has))
    if sent.placeholder in record.jobid:
        record.jobid.remove(sent.placeholder)
    graph.in_progress.discard(sent.step_name)
    subtree, _ = graph.bfs_subtree(sent.step_name)
    for name in subtree:  # what Maestro does when a submit fails
        graph.failed_steps.add(name)
        graph.values[name].mark_end(failed)


def why_off() -> str | None:
    """Why the pipeline cannot be used in this process (None: it can)."""
    if os.environ.get(SWITCH, "1") == "0":
        return f"{SWITCH}=0"
    version = maestro_names.maestro_version()
    if version not in maestro_names.TESTED_VERSIONS:
        return (f"maestrowf {version} is not a version it was tested with "
                f"({', '.join(maestro_names.TESTED_VERSIONS)})")
    lacking = maestro_names.missing()
    if lacking:
        return f"this Maestro lacks {', '.join(lacking)}"
    return None


def conductor_line(options: Any) -> tuple[bool, str]:
    """(pipeline on, one line) on what the conductor's cycles will do for a study with
    these batch options, for ``doctor`` and ``render``."""
    reason = why_off()
    if reason:
        return False, (f"one submit per step, dependencies not held by Flux, and no resume: "
                       f"the cycle pipeline is off ({reason})")
    held = ("dependencies held by Flux: a step is sent as soon as its parents are in Flux "
            "(afterok)" if options.flux_dependencies else
            "dependencies not held by Flux (flux_dependencies: false): each step waits for "
            "a cycle after its parents end")
    return True, f"a cycle's jobs are sent together; {held}"


def install() -> bool:
    """Wrap ``ExecutionGraph.execute_ready_steps`` once; False if off (logged once).

    Called at registration (see :class:`WhenGraphImported`) and, as a fallback,
    whenever our adapter is built.
    """
    graph_class = import_maestro(GRAPH_MODULE).ExecutionGraph
    if getattr(graph_class, MARK, False):
        return True
    reason = why_off()
    if reason:
        STUDIES.notices.log_once(LOGGER, logging.WARNING, "pipeline-off", "maestro-flux: "
                                 "submitting one step at a time, dependencies not held by "
                                 "Flux (the cycle pipeline is off: %s)", reason)
        return False
    _wrap(graph_class)
    return True


class WhenGraphImported(importlib.abc.MetaPathFinder):
    """Installs the pipeline as soon as executiongraph.py has been imported.

    Maestro imports its adapters (and so registers ours) from inside the import of
    executiongraph.py, before ExecutionGraph exists (or before that import has even
    begun, when maestrowf.interfaces is imported first), and the conductor's first
    cycle, which submits every root step, starts before any adapter is built. So
    registration leaves this finder at the head of ``sys.meta_path``: at the next
    import of any new module, which comes long before the first cycle, it installs
    the pipeline. It finds no module itself, and does nothing once it has run.
    """

    def __init__(self) -> None:
        self.done = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if not self.done:
            module = sys.modules.get(GRAPH_MODULE)
            if module is not None and hasattr(module, "ExecutionGraph"):
                self.done = True
                install()
        return None


def install_when_ready() -> None:
    """Install the pipeline now if ExecutionGraph exists, else once it does."""
    # Not imported yet, or mid-import: importing it here could be circular (Maestro
    # may be importing its adapters, ours included, on the way to importing it).
    module = sys.modules.get(GRAPH_MODULE)
    if module is not None and hasattr(module, "ExecutionGraph"):
        install()
    elif not any(isinstance(f, WhenGraphImported) for f in sys.meta_path):
        sys.meta_path.insert(0, WhenGraphImported())


def _ours(graph: Any) -> bool:
    block = graph._adapter
    return isinstance(block, dict) and block.get("type") == FluxAdapter.key and not graph.dry_run


def _wrap(graph_class: type) -> None:
    execute_ready_steps = graph_class.execute_ready_steps

    def wrapped(self: Any) -> Any:
        if not _ours(self) or os.environ.get(SWITCH, "1") == "0":
            return execute_ready_steps(self)
        self._adapter.setdefault(STUDY_KEY, uuid.uuid4().hex)
        return Conductor(self, execute_ready_steps).cycle()

    wrapped.__wrapped__ = execute_ready_steps
    graph_class.execute_ready_steps = wrapped
    setattr(graph_class, MARK, True)


class Conductor:
    """One conductor cycle of a study: Maestro's rounds, each with its jobs sent
    together, the steps that can go ahead sent after it, and more rounds while Flux
    has already ended a job Maestro polls (so a study does not wait a whole sleep
    for each step that Flux finished during the cycle)."""

    def __init__(self, graph: Any, maestro_round: Any) -> None:
        self.graph, self.maestro_round = graph, maestro_round
        self.study = STUDIES.for_block(graph._adapter)
        self.adapter = FluxAdapter(**graph._adapter)
        self.ahead_on = self.adapter.batch_options.flux_dependencies

    def cycle(self) -> Any:
        self._guarded("write the conductor's heartbeat", self._note)
        for _ in range(MAX_ROUNDS):
            status = self.round()
            if status.name != "RUNNING" or not self._flux_ended_some():
                break
        if status.name != "RUNNING" or self.graph.is_canceled:
            self._guarded("cancel what was sent ahead", ahead.cancel_all, self.study,
                          self.adapter.broker())
        return status

    def _note(self) -> None:
        """Journal the conductor once per process, beat every cycle, and keep the last
        whole graph pickle (Maestro rewrites it in place; a kill mid-write tears it)."""
        graph, study = self.graph, self.study
        first = next((r for n, r in graph.values.items() if n != ahead.SOURCE), None)
        journal = study.journal_for(first.workspace.value if first else None)
        if journal is None:
            return
        if not study.noted:
            journal.conductor({"pid": os.getpid(), "argv": sys.argv,
                               "throttle": graph._submission_throttle,
                               **conductor_options(sys.argv)})
            study.noted = True
        journal.beat({"study": graph.name})
        pickled = journal.root / f"{graph.name}.pkl"
        if pickled.exists():
            shutil.copyfile(pickled, journal.folder / PICKLE_BACKUP)

    def round(self) -> Any:
        graph, study = self.graph, self.study
        # issue 18: steps awaiting resubmission after a HWFAILURE leave the throttle
        self._guarded("free steps to resubmit", resubmit.free_resubmissions, graph)
        if self.ahead_on:
            self._guarded("check the jobs sent ahead", ahead.prune, graph, study,
                          self.adapter.broker())
            graph.ready_steps = ahead.AheadFirst(graph.ready_steps, study, graph)
        cycle = study.cycle = Cycle()
        try:
            status = self.maestro_round(graph)
        finally:
            study.cycle = None
            graph.ready_steps = deque(graph.ready_steps)  # what Maestro pickles
            cycle.record(graph, study.journal or None)
        if self.ahead_on and status.name == "RUNNING" and not graph.is_canceled:
            self._guarded("send steps ahead", ahead.send, graph, study, self.adapter)
        return status

    def _flux_ended_some(self) -> bool:
        """True if a job Maestro polls has already ended in Flux."""
        graph = self.graph
        ids = [graph.values[name].jobid[-1] for name in graph.in_progress
               if graph.values[name].jobid]
        states = self._guarded("poll", self.adapter.check_jobs, ids)
        return bool(states) and any(state.name in ENDED for state in states[1].values())

    def _guarded(self, what: str, call: Any, *args: Any) -> Any:
        """Our own work around Maestro's round never takes the conductor down."""
        try:
            return call(*args)
        except Exception as err:
            LOGGER.debug("%s failed", what, exc_info=True)
            LOGGER.error("maestro-flux: could not %s: %s: %s; the study goes on",
                         what, type(err).__name__, err)
            return None
