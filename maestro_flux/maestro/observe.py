"""A study's files and its broker, gathered for ``maestro-flux status`` and ``report``.

What the study's own files say (``batch.info``, the pickled graph: study_graph.py,
the journal, the conductor's heartbeat, each failed step's ``.err``) joined with what
Flux says of its jobs (broker/study_jobs.py: one job-list request, and eventlogs
for the report). With the broker unreachable, the files alone, and one line naming
the URI. :class:`Observer` keeps the broker connection and the files read, so that
``status --watch`` re-reads a file only when it changed and asks Flux once per refresh.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from maestro_flux.broker import study_jobs
from maestro_flux.broker import uri as uris
from maestro_flux.broker.connection import Broker
from maestro_flux.maestro import journal as journals
from maestro_flux.maestro.study_graph import NoGraphYet, StudyGraph, read_graph
from maestro_flux.model import jobids
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.journal import Replay
from maestro_flux.model.study_view import (
    BAD,
    FluxJob,
    GraphStep,
    Snapshot,
    by_step,
    flux_job,
    join,
    step_jobs,
    study_ended,
    with_eventlog,
)

LOGGER = logging.getLogger(__name__)
ADAPTER = "flux"
#: Inactive jobs that ended this long before the study began are not asked for.
CLOCK_SLACK = 120.0


@dataclass
class Gathered:
    """One look at a study: the snapshot ``status`` shows, and what the report needs."""

    snapshot: Snapshot
    steps: tuple[GraphStep, ...]
    jobs: dict[str, FluxJob]  # what Flux knows, by f58 id
    history: dict[str, tuple[str, ...]]  # each step's jobs, oldest first
    graph: StudyGraph
    replay: Replay


def check_study(directory: str | Path) -> tuple[Path, dict]:
    """The study root and its batch block; one line if it is no study of ours."""
    root = Path(directory).expanduser().resolve()
    info = root / "batch.info"
    if not info.is_file():
        raise MaestroFluxError(f"{directory}: holds no Maestro study (no batch.info)")
    try:
        batch = yaml.safe_load(info.read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise MaestroFluxError(f"{info}: cannot be read ({_one_line(err)})") from None
    if not isinstance(batch, dict) or batch.get("type") != ADAPTER:
        kind = batch.get("type") if isinstance(batch, dict) else None
        raise MaestroFluxError(f"{directory}: a study of the '{kind}' adapter; maestro-flux "
                               f"shows 'batch: type: {ADAPTER}' studies")
    return root, batch


def unreachable(uri: str | None, err: BaseException) -> str:
    """One line: the broker cannot be reached, why (without the connection's hints)."""
    text = _one_line(err)
    found = re.match(r"cannot connect to Flux at .*?: (.*?)(; |$)", text)
    why = found.group(1) if found else text
    return (f"Flux at {uri or uris.SYSTEM_INSTANCE} cannot be reached ({why}); showing "
            "what the study's files say")


def _one_line(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def read_journal(root: Path) -> Replay:
    """The study's journal; one line naming it if it cannot be read."""
    path = root / journals.FOLDER / journals.JOURNAL
    try:
        return journals.read(root)
    except MaestroFluxError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise MaestroFluxError(f"{path}: cannot be read ({_one_line(err)})") from None


def conductor_state(root: Path, now: float) -> tuple[dict, bool | None]:
    """The conductor's last heartbeat, and whether it is alive (None: no heartbeat, or
    it ran on another host, where this process cannot tell)."""
    beat = journals.heartbeat(root)
    if not beat:
        return {}, None
    if beat.get("host") != socket.gethostname():
        return beat, None
    pid = beat.get("pid")
    return beat, bool(pid) and _alive(int(pid))


def conductor_text(beat: dict, alive: bool | None, ended: bool, root: Path,
                   now: float) -> str | None:
    """The conductor, in words."""
    if not beat:
        return None
    pid, host = beat.get("pid"), beat.get("host")
    age = f"last cycle {now - float(beat.get('time', now)):.0f}s ago"
    if alive is None:
        return f"on {host}, pid {pid}, {age}"
    if alive:
        return f"running, pid {pid}, {age}"
    if ended:
        return f"exited (pid {pid}), {age}"
    return f"gone (pid {pid}), {age}; 'maestro-flux resume {root}' takes the study up again"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except PermissionError:
        return True
    except OSError:
        return False
    return any(word in command for word in (b"conductor", b"maestro"))


def _canonical(jobid: str) -> str:
    try:
        return jobids.f58_encode(jobids.parse_jobid(jobid))
    except (ValueError, TypeError):
        return jobid


def last_err_line(workspace: str, jobid: str | None) -> str | None:
    """The last non-empty line of the step's ``.err`` for ``jobid`` (else its newest)."""
    folder = Path(workspace)
    try:
        found = list(folder.glob(f"*.{jobid}.err")) if jobid else []
        if not found:
            found = sorted(folder.glob("*.err"), key=lambda p: p.stat().st_mtime)[-1:]
        if not found:
            return None
        with open(found[0], "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:200] if lines else None


@dataclass
class Observer:
    """A study being looked at, possibly again and again (``status --watch``)."""

    directory: str
    uri: str | None = None  # --uri; else the study's own broker
    eventlogs: bool = False  # read every job's eventlog (the report)
    offline: bool = False  # the study's files only: Flux is not asked
    root: Path = field(init=False)
    batch: dict = field(init=False)
    _graph: tuple[float, StudyGraph] | None = None
    _journal: tuple[tuple[float, int], Replay] | None = None
    _broker: Broker | None = None
    _attrs: set[str] | None = None
    _choice: uris.BrokerChoice | None = None

    def __post_init__(self) -> None:
        self.root, self.batch = check_study(self.directory)

    # -- the study's files ------------------------------------------------------
    def graph(self) -> StudyGraph:
        """The pickled graph, read again only when the conductor rewrote it."""
        beat = journals.heartbeat(self.root) or {}
        name = beat.get("study")
        path = self.root / f"{name}.pkl" if name else None
        stamp = path.stat().st_mtime if path and path.exists() else -1.0
        if self._graph is None or stamp < 0 or stamp != self._graph[0]:
            try:
                self._graph = (stamp, read_graph(self.root, name))
            except NoGraphYet:
                # launched, its conductor not through its first cycle: nothing to show yet
                return StudyGraph(name or self.root.name, (), {}, False, self.root)
        return self._graph[1]

    def journal(self) -> Replay:
        path = self.root / journals.FOLDER / journals.JOURNAL
        try:
            info = path.stat()
            stamp = (info.st_mtime, info.st_size)
        except OSError:
            stamp = (0.0, -1)
        if self._journal is None or self._journal[0] != stamp:
            self._journal = (stamp, read_journal(self.root))
        return self._journal[1]

    # -- the broker ---------------------------------------------------------------
    def choice(self, graph: StudyGraph) -> uris.BrokerChoice:
        if self._choice is None:
            if self.uri:
                self._choice = uris.BrokerChoice(self.uri, "--uri")
            else:
                block = {**self.batch, **graph.adapter}
                self._choice = uris.choose_broker(block.get("flux_uri") or block.get("uri"),
                                                  uri_file=block.get("flux_uri_file"))
        return self._choice

    def broker(self, graph: StudyGraph) -> Broker:
        if self._broker is None:
            block = {**self.batch, **graph.adapter}
            self._broker = Broker(self.choice(graph).uri,
                                  timeout=float(block.get("connect_timeout", 5.0)))
        return self._broker

    def ask_flux(self, graph: StudyGraph, wanted: set[int]) -> tuple[dict[int, dict],
                                                                        dict[int, list]]:
        """Flux's entries for the study's jobs, and their eventlogs if asked for."""
        broker = self.broker(graph)
        if self._attrs is None:
            offered = broker.call(study_jobs.offered_attrs)
            self._attrs = offered & set(study_jobs.WANTED)
        since = max(0.0, (self.root / "batch.info").stat().st_mtime - CLOCK_SLACK)
        listed = broker.call(lambda h: study_jobs.list_jobs(h, since, self._attrs or ()))
        entries = {jobid: entry for jobid, entry in listed.items() if jobid in wanted}
        logs: dict[int, list] = {}
        if self.eventlogs and entries:
            logs = broker.call(lambda h: study_jobs.eventlogs(h, sorted(entries)))
        return entries, logs

    # -- one look ------------------------------------------------------------------
    def look(self, now: float | None = None) -> Gathered:
        now = time.time() if now is None else now
        # The conductor first: one found gone before the graph is read left that graph
        # final; one that ends meanwhile is still shown running (the next look tells).
        conductor = conductor_state(self.root, now)
        replay, read = self.journal(), self.graph()
        sent = [replace(s, jobid=_canonical(s.jobid)) if s.jobid else s
                for s in replay.sent.values()]
        steps = tuple(GraphStep(**{**step.__dict__,
                                   "jobids": tuple(_canonical(j) for j in step.jobids)})
                      for step in read.steps)
        sent_of = by_step(sent)
        history = {step.name: step_jobs(step, sent_of.get(step.name, ())) for step in steps}
        wanted = {jobids.parse_jobid(j) for ids in history.values() for j in ids}
        jobs, broker_note = self._flux_jobs(read, wanted)
        views = self._views(steps, jobs, sent, now)
        snapshot = self._snapshot(read, replay, views, broker_note, now, conductor)
        return Gathered(snapshot, steps, jobs, history, read, replay)

    def _flux_jobs(self, read: StudyGraph,
                   wanted: set[int]) -> tuple[dict[str, FluxJob], str | None]:
        """The study's jobs as Flux knows them, or why Flux could not be asked."""
        jobs: dict[str, FluxJob] = {}
        if not wanted or self.offline:
            return jobs, None
        try:
            entries, logs = self.ask_flux(read, wanted)
        except (MaestroFluxError, OSError) as err:
            self._broker = None  # connect again next time
            self._attrs = None
            return jobs, unreachable(self.choice(read).uri, err)
        for number, entry in entries.items():
            job = flux_job(jobids.f58_encode(number), entry)
            jobs[job.jobid] = with_eventlog(job, logs.get(number, ()))
        return jobs, None

    @staticmethod
    def _views(steps: tuple, jobs: dict, sent: list, now: float) -> list:
        """Each step's view, with the last line of its .err where it did not succeed."""
        views = join(steps, jobs, sent, now=now)
        workspaces = {step.name: step.workspace for step in steps}
        errs = {v.name: last_err_line(workspaces[v.name], v.jobid)
                for v in views if v.category in BAD and v.jobid}
        errs = {name: line for name, line in errs.items() if line}
        return join(steps, jobs, sent, err_lines=errs, now=now) if errs else views

    def _snapshot(self, read: StudyGraph, replay: Replay, views: list, broker_note: str | None,
                  now: float, conductor: tuple[dict, bool | None]) -> Snapshot:
        beat, alive = conductor
        ended = study_ended(views, alive, read.cancelled)
        conductor = conductor_text(beat, alive, ended, self.root, now)
        if not read.steps:
            conductor = (conductor or "not started yet") + "; no graph pickled yet"
        return Snapshot(
            study=read.name, root=str(self.root),
            uri=("not asked (--offline)" if self.offline else self.choice(read).describe()),
            taken=now, steps=tuple(views), broker=broker_note, conductor=conductor,
            conductor_alive=alive, ended=ended, sleep=replay.options.get("sleep"))


def held_in_flux(replay: Replay) -> int:
    """How many steps had a job sent ahead, waiting on its parents in Flux."""
    return len({s.step for s in replay.sent.values() if s.kind == "ahead" and s.jobid})
