"""``maestro-flux resume STUDY_DIR``: take a study up again after its conductor died.

1. **Load** the ExecutionGraph Maestro's conductor pickled last (or the last whole
   copy the pipeline kept, if the conductor died while Maestro rewrote it; or the
   study staged afresh, if it never finished a cycle).
2. **Reconcile** it with the journal and the broker (model/resume.py): every job the
   study has in Flux stays the job of its step; a step that never reached Flux is
   submitted when it is ready; none is submitted twice.
3. **Continue** Maestro's own conductor loop on that graph, in this process (``-fg``)
   or in a new one in the background, as ``maestro run`` does; ``maestro status`` and
   ``maestro cancel`` work on the directory as before.

It refuses, with one line, a directory without a study, a study of another adapter,
a study whose conductor still runs, and a Maestro outside the pipeline's gate; a
finished study is said to be finished (exit 0) and nothing is submitted.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dill

from maestro_flux.broker import identity
from maestro_flux.maestro import journal as journals
from maestro_flux.maestro import pipeline
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.maestro_imports import import_maestro
from maestro_flux.maestro.study_state import STUDIES, STUDY_KEY
from maestro_flux.model import jobids
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.journal import Replay
from maestro_flux.model.resume import ResumePlan, StepRecord, reconcile
from maestro_flux.model.retries import is_node_failure

LOGGER = logging.getLogger(__name__)
DEFAULT_SLEEP = 60  # maestro run's
#: Seconds to wait before a second search for submissions not found by their token.
LISTING_GRACE = 2.0


class Finished(Exception):
    """The study has ended: nothing to resume (not an error)."""


@dataclass
class Loaded:
    """A study directory, read."""

    root: Path
    study: Any  # Maestro's Study
    graph: Any  # Maestro's ExecutionGraph
    whence: str  # which file the graph came from, in words
    replay: Replay


def _conductor_class() -> Any:
    return import_maestro("maestrowf.conductor").Conductor


def load(directory: str) -> Loaded:
    """Read the study at ``directory``; MaestroFluxError (one line) if it cannot be
    resumed, Finished if it has ended."""
    root = Path(directory).resolve()
    if not (root / "batch.info").is_file():
        raise MaestroFluxError(f"{directory}: holds no Maestro study (no batch.info)")
    conductor = _conductor_class()
    batch = conductor.load_batch(str(root)) or {}
    if batch.get("type") != FluxAdapter.key:
        raise MaestroFluxError(f"{directory}: a study of the '{batch.get('type')}' adapter; "
                               f"resume takes up 'batch: type: {FluxAdapter.key}' studies")
    off = pipeline.why_off()
    if off:
        raise MaestroFluxError(f"cannot resume {directory}: the cycle pipeline is off ({off})")
    try:
        study = conductor.load_study(str(root))
    except Exception as err:  # Maestro's own messages
        raise MaestroFluxError(f"{directory}: {err}") from None
    graph, whence = _graph(root, study, batch)
    replay = journals.read(root)
    status = graph._check_study_completion()
    if status.name != "RUNNING":
        raise Finished(f"{directory}: the study has ended ({status.name}); nothing to resume")
    return Loaded(root, study, graph, whence, replay)


def _graph(root: Path, study: Any, batch: dict) -> tuple[Any, str]:
    for path in (root / f"{study.name}.pkl", root / journals.FOLDER / pipeline.PICKLE_BACKUP):
        try:
            with open(path, "rb") as handle:
                return dill.load(handle), f"the graph pickled at {path}"
        except FileNotFoundError:
            continue
        except Exception as err:  # torn by a kill mid-write: try the copy
            LOGGER.warning("maestro-flux: %s cannot be read (%s: %s)", path,
                           type(err).__name__, err)
    _, graph = study.stage()  # it never finished a cycle: staged as maestro run does
    graph.set_adapter(batch)
    return graph, "the study staged afresh (no graph was pickled)"


def refuse_if_alive(root: Path, sleep: float) -> None:
    """MaestroFluxError if the study's conductor may still be running."""
    beat = journals.heartbeat(root)
    if not beat:
        return
    age = time.time() - beat.get("time", 0)
    pid, host = beat.get("pid"), beat.get("host")
    if host == socket.gethostname():
        if pid and _is_conductor(int(pid)):
            raise MaestroFluxError(f"{root}: its conductor is still running (pid {pid}, last "
                                   f"cycle {age:.0f}s ago); 'maestro cancel' stops it")
        LOGGER.warning("maestro-flux: the study's conductor (pid %s) is gone; its last "
                       "cycle ran %.0fs ago", pid, age)
    elif age < 3 * sleep + 60:
        raise MaestroFluxError(f"{root}: its conductor ran on {host} {age:.0f}s ago (pid {pid})"
                               "; resume there, or once it is gone")


def _is_conductor(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, PermissionError):
        return False
    return any(word in command for word in (b"conductor", b"maestro"))


def plan_for(loaded: Loaded) -> tuple[ResumePlan, int]:
    """The reconciliation, after asking the broker for unanswered submissions;
    returns the plan and how many jobs were found by their token."""
    graph, replay = loaded.graph, loaded.replay
    steps = {name: StepRecord(record.status.name, tuple(record.jobid))
             for name, record in graph.values.items() if record is not None}
    found: dict[str, str] = {}
    unanswered = replay.unanswered()
    if unanswered:
        adapter = FluxAdapter(**graph._adapter)
        names = {adapter.job_name(graph.values[s.step].step, graph.values[s.step].workspace.value)
                 for s in unanswered if s.step in graph.values}
        since = min(c.get("time", 0) for c in replay.conductors) if replay.conductors else 0
        broker = adapter.broker()
        tokens = [s.token for s in unanswered]
        numbers = broker.call(lambda h: identity.find_tokens(h, tokens, names, since))
        if len(numbers) < len(tokens):  # job-list may not list a job just accepted yet
            time.sleep(LISTING_GRACE)
            numbers = broker.call(lambda h: identity.find_tokens(h, tokens, names, since))
        found = {token: jobids.f58_encode(number) for token, number in numbers.items()}
        _journal_found(loaded, found)
    return reconcile(steps, replay, found), len(found)


def _journal_found(loaded: Loaded, found: dict[str, str]) -> None:
    """Write the ids found by token into the journal, as if the dead conductor had:
    a later resume then need not search for them again."""
    journal = journals.Journal(loaded.root)
    for sent in loaded.replay.unanswered():
        if sent.token in found:
            journal.submitted(sent.step, sent.token, found[sent.token])


def apply(graph: Any, plan: ResumePlan) -> None:
    """Put the plan into the graph and the study's state, and count again each step's
    retries after node failures (its earlier jobs that Flux ended that way)."""
    graph._adapter.setdefault(STUDY_KEY, uuid.uuid4().hex)
    _apply_plan(graph, plan)
    _restore_node_failures(graph, STUDIES.for_block(graph._adapter))


def _restore_node_failures(graph: Any, state: Any) -> None:
    jobs = {name: list(record.jobid) for name, record in graph.values.items()
            if record is not None and record.jobid}
    jobs.update({name: [*jobs.get(name, []), job.jobid] for name, job in state.ahead.items()})
    for name, ids in jobs.items():
        for jobid in ids:
            state.node_failures.known(jobid, name)
    earlier = {jobid: name for name, ids in jobs.items() for jobid in ids[:-1]}
    if not earlier:
        return
    broker = FluxAdapter(**graph._adapter).broker()
    statuses = broker.statuses({jobids.parse_jobid(jobid) for jobid in earlier})
    for jobid, name in earlier.items():
        status = statuses.get(jobids.parse_jobid(jobid))
        if status is not None and is_node_failure(status):
            state.node_failures.retries[name] = state.node_failures.retries.get(name, 0) + 1


def _apply_plan(graph: Any, plan: ResumePlan) -> None:
    for name, kept in plan.record.items():
        record = graph.values[name]
        record.jobid.extend(kept)
        if record.status.name == "INITIALIZED":
            record.mark_submitted()
        graph.in_progress.add(name)
        if name in graph.ready_steps:
            graph.ready_steps.remove(name)
    STUDIES.for_block(graph._adapter).ahead.update(plan.ahead)


def monitor(loaded: Loaded, sleep: int) -> Any:
    """Maestro's own conductor loop on the resumed graph; its final StudyStatus."""
    conductor = _conductor_class()(loaded.study)
    conductor._pkl_path, conductor._exec_dag = str(loaded.root), loaded.graph
    conductor._setup = True
    conductor.sleep_time = sleep
    try:
        return conductor.monitor_study()
    finally:
        conductor.cleanup()


def background(directory: str, argv: list[str]) -> int:
    """Start the resumed conductor as a process of its own, as ``maestro run`` does."""
    out = Path(directory).resolve() / journals.FOLDER / "resume.out"
    with open(out, "ab") as handle:
        child = subprocess.Popen([sys.executable, "-m", "maestro_flux.cli.main", "resume",
                                  *argv, "-fg"], stdout=handle, stderr=handle,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    return child.pid
