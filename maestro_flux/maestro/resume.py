"""``maestro-flux resume STUDY_DIR``: take a study up again after its conductor died.

1. **Load** the graph Maestro's conductor pickled last (or the last whole copy the
   pipeline kept, if the conductor died while Maestro rewrote it; or the study staged
   afresh, if it never finished a cycle), and the journal.
2. **Lock** the study (conductor_lock.py) before anything is submitted: a study
   another live conductor drives is refused, naming its pid and host.
3. **Check** the broker the study submits to answers, with the environment the study
   was started with (journaled by its first conductor), before anything detaches.
4. **Reconcile** the graph with the journal and the broker (model/resume.py): every
   job the study has in Flux stays the job of its step, found by its token where the
   journal has no id for it; a step that never reached Flux is submitted when ready;
   none is submitted twice; restart counts come back from the journal.
5. **Continue** Maestro's own conductor loop on that graph, in this process (``-fg``)
   or in a new one in the background, which inherits the lock, as ``maestro run``
   starts its conductor; ``maestro status`` and ``maestro cancel`` work as before.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maestro_flux.broker import identity
from maestro_flux.broker.connection import Broker
from maestro_flux.maestro import gate
from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro import journal as journals
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.conductor_lock import ConductorLock, Held
from maestro_flux.maestro.pipeline import PICKLE_BACKUP
from maestro_flux.maestro.study_state import STUDIES, STUDY_KEY
from maestro_flux.maestro.submissions import is_placeholder
from maestro_flux.model import jobids
from maestro_flux.model.environment import without_secrets
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.journal import Replay
from maestro_flux.model.request import default_job_name
from maestro_flux.model.resume import ResumePlan, StepRecord, reconcile
from maestro_flux.model.retries import is_node_failure

LOGGER = logging.getLogger(__name__)
DEFAULT_SLEEP = 60  # maestro run's
#: Seconds to wait before a second search for submissions not found by their token,
#: when one is younger than this (job-list may not list a job just accepted).
LISTING_GRACE = 2.0
#: Environment variables that differ between any two shells: not worth a word.
CHANGING = frozenset(("_", "OLDPWD", "PWD", "SHLVL", "SSH_CLIENT", "SSH_CONNECTION",
                      "SSH_TTY", "TERM_SESSION_ID", "WINDOWID", "COLUMNS", "LINES"))


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


def load(directory: str, finished_ok: bool = False) -> Loaded:
    """Read the study at ``directory``; MaestroFluxError (one line) if it cannot be
    taken up, Finished if it has ended (unless ``finished_ok``)."""
    root = Path(directory).resolve()
    if not (root / "batch.info").is_file():
        raise MaestroFluxError(f"{directory}: holds no Maestro study (no batch.info)")
    try:
        batch = maestro_graph.load_batch(root)
    except Exception as err:  # Maestro's own message, in one line
        raise MaestroFluxError(f"{directory}/batch.info: {err}") from None
    if batch.get("type") != FluxAdapter.key:
        raise MaestroFluxError(f"{directory}: a study of the '{batch.get('type')}' adapter; "
                               f"maestro-flux takes up 'batch: type: {FluxAdapter.key}' studies")
    off = gate.why_off()
    if off:
        raise MaestroFluxError(f"cannot resume {directory}: the cycle pipeline is off ({off})")
    try:
        study = maestro_graph.load_study(root)
    except Exception as err:  # Maestro's own messages
        raise MaestroFluxError(f"{directory}: {err}") from None
    loaded = maestro_graph.load_graph(root, study, root / journals.FOLDER / PICKLE_BACKUP, batch)
    try:
        replay = journals.read(root)
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise MaestroFluxError(f"{root / journals.FOLDER / journals.JOURNAL}: cannot be read "
                               f"({reason})") from None
    status = maestro_graph.completion(loaded.graph)
    if status.name != "RUNNING" and not finished_ok:
        raise Finished(f"{directory}: the study has ended ({status.name}); nothing to resume")
    return Loaded(root, study, loaded.graph, loaded.whence, replay)


def take_lock(loaded: Loaded, sleep: float) -> ConductorLock:
    """The study's conductor lock, taken before anything is submitted; MaestroFluxError
    naming the live conductor's pid and host if another process drives the study."""
    lock = STUDIES.lock_for(loaded.root / journals.FOLDER)
    try:
        lock.acquire(" ".join(["maestro-flux", *sys.argv[1:]]))
    except Held as held:
        raise MaestroFluxError(str(held)) from None
    if not lock.supported:  # a filesystem without locks: the heartbeat is all there is
        refuse_if_alive(loaded.root, sleep)
    return lock


def refuse_if_alive(root: Path, sleep: float) -> None:
    """MaestroFluxError if the study's conductor beat recently (filesystems whose locks
    do not work), or runs on this host."""
    beat = journals.heartbeat(root)
    if not beat:
        return
    age = time.time() - beat.get("time", 0)
    pid, host = beat.get("pid"), beat.get("host")
    if host == socket.gethostname():
        if pid and _is_conductor(int(pid)):
            raise MaestroFluxError(f"{root}: its conductor is still running (pid {pid} on "
                                   f"{host}, last cycle {age:.0f}s ago); 'maestro cancel' "
                                   "stops it")
    elif age < 3 * sleep + 60:
        raise MaestroFluxError(f"{root}: its conductor ran on {host} {age:.0f}s ago (pid {pid})"
                               "; resume there, or once it is gone")


def _is_conductor(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return any(word in command for word in (b"conductor", b"maestro"))


# -- the environment the study was started with -------------------------------------
def started_environment(replay: Replay) -> dict[str, str] | None:
    """The environment the study's first conductor submitted with (None: not journaled,
    a study started by an older maestro-flux)."""
    first = replay.conductors[0] if replay.conductors else {}
    env = first.get("environment")
    return dict(env) if isinstance(env, Mapping) else None


def environment_difference(started: Mapping[str, str], here: Mapping[str, str]) -> str | None:
    """One line naming what differs between the study's environment and this one (the
    secrets, which the journal does not hold, left out)."""
    here = without_secrets(here)
    added = sorted(k for k in here.keys() - started.keys() if k not in CHANGING)
    removed = sorted(k for k in started.keys() - here.keys() if k not in CHANGING)
    changed = sorted(k for k in started.keys() & here.keys()
                     if started[k] != here[k] and k not in CHANGING)
    if not (added or removed or changed):
        return None
    parts = [f"{len(changed)} changed ({_few(changed)})" if changed else "",
             f"{len(added)} set only here ({_few(added)})" if added else "",
             f"{len(removed)} unset here ({_few(removed)})" if removed else ""]
    return ", ".join(filter(None, parts))


def _few(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def use_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Submit with ``env`` from now on (this process's environment becomes it), with
    this shell's secrets, which the journal does not hold; returns it."""
    secrets = {name: value for name, value in os.environ.items()
               if name not in without_secrets({name: value})}
    os.environ.clear()
    os.environ.update({**env, **secrets})
    return dict(os.environ)


# -- the broker --------------------------------------------------------------------
def adapter_of(loaded: Loaded) -> FluxAdapter:
    block = maestro_graph.batch_block(loaded.graph)
    block.setdefault(STUDY_KEY, uuid.uuid4().hex)
    return FluxAdapter(**block)


def check_broker(adapter: FluxAdapter) -> Broker:
    """The study's broker, asked once; MaestroFluxError naming its URI if it is gone."""
    broker = adapter.broker()
    quiet = logging.getLogger("maestro_flux.broker.connection")  # the outage is this line
    before, quiet.disabled = quiet.disabled, True
    try:
        broker.is_guest()
    except (OSError, MaestroFluxError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise MaestroFluxError(f"cannot reach the study's broker {broker.label}: {reason}; "
                               "nothing was resumed") from None
    finally:
        quiet.disabled = before
    return broker


# -- the search -------------------------------------------------------------------------
def _names_to_search(loaded: Loaded) -> set[str]:
    """Job names of the open submissions, and of the steps the journal has no intent for
    that never reached Flux (an intent whose write failed)."""
    replay, graph = loaded.replay, loaded.graph
    names = {sent.name or default_job_name(sent.step) for sent in replay.unanswered()}
    with_intents = {sent.step for sent in replay.sent.values()}
    names |= {default_job_name(name) for name in maestro_graph.names(graph)
              if name not in with_intents and maestro_graph.state(graph, name) == "INITIALIZED"
              and not maestro_graph.jobids(graph, name)}
    return names


def find_in_flux(loaded: Loaded, broker: Broker,
                 progress: Callable[[int, int, int], None] | None = None) -> dict[str, str]:
    """token -> job id for the open submissions found in Flux."""
    open_intents = loaded.replay.unanswered()
    if not open_intents:
        return {}
    tokens = [sent.token for sent in open_intents]
    names, since = _names_to_search(loaded), loaded.replay.started or 0.0

    def search() -> dict[str, int]:
        return broker.call(lambda h: identity.find_tokens(h, tokens, names, since, progress))
    numbers = search()
    newest = max((sent.time or 0.0) for sent in open_intents)
    wait = newest + LISTING_GRACE - time.time()
    if len(numbers) < len(tokens) and wait > 0:  # job-list may lag a job just accepted
        time.sleep(wait)
        numbers = search()
    return {token: jobids.f58_encode(number) for token, number in numbers.items()}


def plan_for(loaded: Loaded, broker: Broker,
             progress: Callable[[int, int, int], None] | None = None
             ) -> tuple[ResumePlan, int]:
    """The reconciliation, after looking in Flux for open submissions; returns the plan
    and how many jobs were found by their token. Each open submission is closed in the
    journal (found: submitted; not found: abandoned), so that a later resume does not
    look for it again."""
    graph, replay = loaded.graph, loaded.replay
    steps = {name: StepRecord(maestro_graph.state(graph, name),
                              tuple(maestro_graph.jobids(graph, name)),
                              maestro_graph.restarts(graph, name))
             for name in maestro_graph.names(graph)}
    found = find_in_flux(loaded, broker, progress)
    journal = journals.Journal(loaded.root)
    for sent in replay.unanswered():  # every open submission is closed, found or not
        if sent.token in found:
            journal.closed("submitted", sent.step, sent.token, jobid=found[sent.token])
        else:
            journal.closed("abandoned", sent.step, sent.token,
                           reason="not in Flux when the study was resumed (the request "
                                  "never reached the broker)")
    return reconcile(steps, replay, found), len(found)


def apply(graph: Any, plan: ResumePlan, broker: Broker,
          attempts: Mapping[str, int] | None = None) -> None:
    """Put the plan into the graph and the study's state (with each step's attempt, from
    the journal), and count again each step's retries after node failures (its earlier
    jobs that Flux ended that way)."""
    block = maestro_graph.batch_block(graph)
    block.setdefault(STUDY_KEY, uuid.uuid4().hex)
    state = STUDIES.for_block(block)
    for name, kept in plan.record.items():
        maestro_graph.adopt(graph, name, kept)
    for name, count in plan.restarts.items():
        maestro_graph.set_restarts(graph, name, count)
    jobs = {name: maestro_graph.jobids(graph, name) for name in maestro_graph.names(graph)}
    known = [(jobid, name) for name, ids in jobs.items() for jobid in ids]
    known += [(job.jobid, name) for name, job in plan.ahead.items()]
    state.submissions.restore(plan.ahead, attempts or {}, known)
    _restore_node_failures(jobs, state, broker)


def _restore_node_failures(jobs: dict[str, list[str]], state: Any, broker: Broker) -> None:
    earlier = {jobid: name for name, ids in jobs.items() for jobid in ids[:-1]
               if not is_placeholder(jobid)}
    if not earlier:
        return
    statuses = broker.statuses({jobids.parse_jobid(jobid) for jobid in earlier})
    for jobid, name in earlier.items():
        status = statuses.get(jobids.parse_jobid(jobid))
        if status is not None and is_node_failure(status):
            state.node_failures.retries[name] = state.node_failures.retries.get(name, 0) + 1


def monitor(loaded: Loaded, sleep: int) -> Any:
    """Maestro's own conductor loop on the resumed graph; its final StudyStatus."""
    return maestro_graph.monitor(loaded.study, loaded.graph, loaded.root, sleep)


def background(directory: str, argv: list[str], lock: ConductorLock,
               env: Mapping[str, str]) -> int:
    """Start the resumed conductor as a process of its own, as ``maestro run`` does,
    handing it the study's lock."""
    out = Path(directory).resolve() / journals.FOLDER / "resume.out"
    fd = lock.inheritable()
    with open(out, "ab") as handle:
        child = subprocess.Popen([sys.executable, "-m", "maestro_flux.cli.main", *argv,
                                  "-fg", "--lock-fd", str(fd)], stdout=handle, stderr=handle,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 pass_fds=(fd,), env=dict(env))
    lock.record(child.pid, "resumed conductor")
    return child.pid
