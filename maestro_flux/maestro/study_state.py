"""Everything about a study that outlives one adapter instance, with one owner.

Maestro builds a new adapter two or three times per conductor cycle from the
batch block alone, so what must last (the broker connections and their timeouts,
which broker each job went to, the step plans, the warnings already shown, the
study's submissions and its conductor lock) lives in a :class:`StudyState`, found
through the one registry :data:`STUDIES`.

The key: the pipeline (pipeline.py) stamps each study's graph with an id of its
own, which Maestro hands back in the batch block every time it builds an adapter,
so two studies in one process never meet, even with identical batch blocks.
Without the stamp (the pipeline off, or an adapter built by hand, as ``render``
does) the key is the batch block's content.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maestro_flux.broker.connection import Broker
from maestro_flux.broker.remote import DEFAULT_CONNECT_TIMEOUT
from maestro_flux.maestro.conductor_lock import ConductorLock
from maestro_flux.maestro.study_context import StudyContext
from maestro_flux.maestro.submissions import Submissions
from maestro_flux.maestro.wake import Wake
from maestro_flux.model.bounded import Bounded
from maestro_flux.model.notices import Notices
from maestro_flux.model.retries import NodeFailures

#: The batch-block key under which the pipeline stamps a study's own id.
STUDY_KEY = "_maestro_flux_study"
#: Step plans kept per study: a plan is made when Maestro writes a step's script
#: and used when it submits it, in the same cycle, so a few thousand is plenty.
MAX_PLANS = 4096
#: Studies kept per process: a conductor runs one; tests and notebooks run more.
MAX_STUDIES = 64

@dataclass
class StudyState:
    """One study's lasting state (see the module docstring)."""

    key: str
    notices: Notices = field(default_factory=Notices)
    plans: Bounded[tuple[str, str], Any] = field(default_factory=lambda: Bounded(MAX_PLANS))
    #: The spec's directory when the caller knows it (``render``); else read from
    #: the study's output directory (study_context.py).
    spec_root: str | None = None
    #: What the study's output directory says, read once (study_context.py).
    context: StudyContext = field(default_factory=StudyContext)
    #: Retries after node failures, per step, and the job id -> step map they need
    #: (model/retries.py; plain data, for a journal to keep).
    node_failures: NodeFailures = field(default_factory=NodeFailures)
    #: Every job's life, from its request to its adoption or drop (submissions.py).
    submissions: Submissions = field(init=False)
    #: Whether this process has journaled its conductor for the study.
    noted: bool = False
    #: The study's conductor lock, once this process drives the study.
    lock: ConductorLock | None = None
    #: The conductor's wait between cycles, ended by Flux (wake.py).
    wake: Wake = field(init=False)
    #: The conductor's environment, read once a round (its jobs' source): reading
    #: os.environ for each of thousands of steps cost more than their scripts.
    environment: dict[str, str] | None = None
    _brokers: dict[str | None, Broker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.submissions = Submissions(self.notices, self.node_failures)
        self.wake = Wake(self.notices)

    @property
    def ahead(self) -> dict:
        """Step name -> its job sent ahead of Maestro, until Maestro adopts it."""
        return self.submissions.ahead

    def broker(self, uri: str | None, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Broker:
        """This study's Broker for ``uri`` (no connection is opened here)."""
        broker = self._brokers.get(uri)
        if broker is None:
            broker = self._brokers[uri] = Broker(uri, timeout, notices=self.notices)
        broker.timeout = timeout  # the study's own connect_timeout, read with its block
        return broker

    def moved_from(self, jobid: int, uri: str | None) -> str | None:
        """The other broker this study submitted ``jobid`` to, if not ``uri``'s."""
        for other, broker in self._brokers.items():
            if other != uri and jobid in broker.submitted:
                return other or "the system instance"
        return None


def study_key(batch_block: Mapping[str, Any]) -> str:
    """The registry key of the study an adapter's batch block belongs to."""
    stamp = batch_block.get(STUDY_KEY)
    if stamp:
        return f"study:{stamp}"
    return "block:" + json.dumps(batch_block, sort_keys=True, default=str)


class StudyRegistry:
    """Every StudyState of this process, by key, the least recently used dropped
    past ``limit`` (a dropped study only reconnects and repeats its warnings)."""

    def __init__(self, limit: int = MAX_STUDIES) -> None:
        self._studies: Bounded[str, StudyState] = Bounded(limit)
        self._lock = threading.Lock()
        #: Messages about the process rather than a study (the pipeline's state).
        self.notices = Notices()
        #: The study whose conductor runs in this process, once its first cycle ran.
        self.conducting: StudyState | None = None
        #: The conductor locks this process holds or tried, by the study's folder: a
        #: process takes a study's lock once, whatever StudyState asks for it.
        self._conductor_locks: dict[Path, ConductorLock] = {}

    def __len__(self) -> int:
        return len(self._studies)

    def for_block(self, batch_block: Mapping[str, Any]) -> StudyState:
        """The state of the study ``batch_block`` (an adapter's kwargs) belongs to."""
        key = study_key(batch_block)
        with self._lock:
            return self._studies.get(key) or self._studies.put(key, StudyState(key))

    def lock_for(self, folder: Path) -> ConductorLock:
        """The study's conductor lock in this process (taken or not)."""
        with self._lock:
            return self._conductor_locks.setdefault(folder, ConductorLock(folder))

    def adopt_lock(self, folder: Path, fd: int) -> ConductorLock:
        """The study's lock, handed over by the process that started this one."""
        with self._lock:
            lock = self._conductor_locks[folder] = ConductorLock.adopt(folder, fd)
            return lock

    def clear(self) -> None:
        """Forget every study (tests, and the benchmarks between their runs)."""
        with self._lock:
            for study in self._studies.values():
                study.wake.close()
            self._studies.clear()
            self.notices = Notices()
            self.conducting = None


#: The one registry of the process's study state.
STUDIES = StudyRegistry()
