"""A conductor cycle of a study on Flux: Maestro's rounds, with their submissions
sent together, steps sent ahead, and more rounds while Flux has already ended a job.

Maestro 1.2 calls ``adapter.submit`` once per ready step and waits for the job id
before it writes the next step's script, so every step waits a whole broker ingest
round trip (about 27 ms on flux-core 0.88): at most ~38 steps/s, however fast the
adapter. The broker ingests pipelined requests ten times faster. So each of
Maestro's rounds (``ExecutionGraph.execute_ready_steps``, wrapped by gate.py) runs
with the study's submissions open: ``FluxAdapter.submit`` sends the job and returns
a placeholder id at once, and when the round returns (or raises), every answer is
taken and the real id replaces the placeholder (submissions.py). Maestro pickles the
graph and writes ``status.csv`` only after the cycle returns, so what it stores and
shows is what one submit per step stores: real Flux ids.

Around Maestro's round the cycle also takes the study's conductor lock (one
conductor per study), journals the conductor and beats, frees steps awaiting
resubmission from the throttle, looks again for submissions whose answer was lost,
drops and cancels the jobs sent ahead that are of no use (before the round and right
after it), and sends the steps that can go ahead (ahead.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import time
from typing import Any

from maestro_flux.maestro import ahead, journal, steering
from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.conductor_lock import Held
from maestro_flux.maestro.study_state import STUDIES, StudyState
from maestro_flux.model.environment import without_secrets

LOGGER = logging.getLogger(__name__)
#: The last whole graph pickle, kept beside the journal (Conductor._note).
PICKLE_BACKUP = "graph.pkl"
#: Rounds per conductor cycle at most, while Flux keeps ending polled jobs.
MAX_ROUNDS = 64
#: Maestro states (names) of a job that has ended, for the catch-up rounds.
ENDED = frozenset(("FINISHED", "FAILED", "CANCELLED", "TIMEDOUT", "HWFAILURE", "UNKNOWN"))


def environment_record() -> dict[str, str]:
    """The environment the conductor submits with, journaled once for resume: without
    secrets (tokens, keys, passwords: the names jobs never get by default), which a
    resume takes from the shell it runs in."""
    return without_secrets(os.environ)


class Conductor:
    """One conductor cycle of a study: Maestro's rounds, each with its jobs sent
    together, the steps that can go ahead sent after it, and more rounds while Flux
    has already ended a job Maestro polls (so a study does not wait a whole sleep
    for each step that Flux finished during the cycle)."""

    def __init__(self, graph: Any, maestro_round: Any) -> None:
        self.graph, self.maestro_round = graph, maestro_round
        self.study: StudyState = STUDIES.for_block(maestro_graph.batch_block(graph))
        self.adapter = FluxAdapter(**maestro_graph.batch_block(graph))
        self.ahead_on = self.adapter.batch_options.flux_dependencies
        #: When the last of Maestro's rounds began (it polls the study's jobs first).
        self.round_began = 0.0

    def cycle(self) -> Any:
        began = time.monotonic()
        self._take_lock()
        self._guarded("write the conductor's heartbeat", self._note)
        for _ in range(MAX_ROUNDS):
            status = self.round()
            if status.name != "RUNNING" or not self._flux_ended_some():
                break
        if status.name != "RUNNING" or maestro_graph.is_canceled(self.graph):
            self._guarded("cancel what was sent ahead", self.study.submissions.cancel_all,
                          self.adapter.broker())
        if status.name == "RUNNING":
            self._guarded("watch the study's jobs until the next cycle", self._arm,
                          time.monotonic() - began)
        return status

    def _arm(self, cost: float) -> None:
        """What the conductor's sleep watches until the next cycle (wake.py)."""
        study, graph = self.study, self.graph
        journal = study.submissions.journal
        if journal is None:
            return
        polled, running = maestro_graph.watched_jobs(graph)
        ahead = [job.jobid for job in study.ahead.values()]
        requests = (*maestro_graph.request_files(journal.root),
                    steering.requests_folder(journal.root) / "cancel-*.json")
        study.wake.arm(self.adapter.broker(), requests, [*polled, *ahead], running,
                       self.round_began, cost)
        STUDIES.conducting = study

    def _take_lock(self) -> None:
        """One conductor per study: this process takes the study's lock before it
        submits anything, and holds it until it ends. A study another live process
        drives is left alone: this conductor exits, naming that process."""
        study = self.study
        if study.lock is not None:
            return
        found = self.study.submissions.journal_for(maestro_graph.first_workspace(self.graph))
        if found is None:
            return
        try:
            study.lock = STUDIES.lock_for(found.folder).acquire(" ".join(sys.argv))
        except Held as held:
            LOGGER.error("maestro-flux: %s; this conductor (pid %d) exits without "
                         "submitting", held, os.getpid())
            raise SystemExit(f"maestro-flux: {held}") from None

    def _note(self) -> None:
        """Journal the conductor once per process, beat every cycle, and keep the last
        whole graph pickle (Maestro rewrites it in place; a kill mid-write tears it)."""
        graph, study = self.graph, self.study
        found = study.submissions.journal
        if found is None:
            return
        if not study.noted:
            info = {"pid": os.getpid(), "host": socket.gethostname(), "argv": sys.argv,
                    "throttle": maestro_graph.throttle(graph),
                    **journal.conductor_options(sys.argv)}
            if not journal.read_conductors(found.root):  # the first: how it was started
                info["environment"] = environment_record()
            found.conductor(info)
            study.noted = True
        found.beat({"study": maestro_graph.study_name(graph)})
        pickled = found.root / f"{maestro_graph.study_name(graph)}.pkl"
        if pickled.exists():
            shutil.copyfile(pickled, found.folder / PICKLE_BACKUP)

    def round(self) -> Any:
        graph, study, broker = self.graph, self.study, self.adapter.broker()
        self.round_began = time.time()
        submissions = study.submissions
        self._guarded("free steps to resubmit", maestro_graph.free_resubmissions, graph)
        if submissions.journal is not None:
            self._guarded("serve the study's requests", steering.serve,
                          submissions.journal.root, graph, study, self.adapter)
        self._guarded("look for submissions whose answer was lost", submissions.resolve, graph)
        if self.ahead_on:
            self._guarded("check the jobs sent ahead", ahead.prune, graph, study, broker)
            maestro_graph.set_ready(graph, ahead.ReadyQueue(maestro_graph.ready(graph), study,
                                                            graph))
        study.environment = dict(os.environ)
        try:
            submissions.open_cycle(graph)
            try:
                status = self.maestro_round()
            finally:
                maestro_graph.plain_ready(graph)  # what Maestro pickles
                submissions.close_cycle(graph)
            if self.ahead_on and not maestro_graph.is_canceled(graph):
                self._after_round(status, broker)
        finally:
            study.environment = None
        return status

    def _after_round(self, status: Any, broker: Any) -> None:
        """Maestro may have failed a parent (or found it UNKNOWN) in this round: its
        children's jobs are canceled now, before Flux can start them; then the steps
        that can go ahead are sent."""
        graph, study = self.graph, self.study
        self._guarded("check the jobs sent ahead", ahead.prune, graph, study, broker)
        if status.name == "RUNNING":
            self._guarded("send steps ahead", ahead.send, graph, study, self.adapter)

    def _flux_ended_some(self) -> bool:
        """True if a job Maestro polls has already ended in Flux."""
        states = self._guarded("poll", self.adapter.check_jobs,
                               maestro_graph.polled_ids(self.graph))
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
