"""A study as Flux runs it: each step with Maestro's state and its job's Flux state,
laid out by the graph (issue 27; ``maestro-flux status`` and ``report``).

Pure decisions on plain data, no I/O:

- :class:`GraphStep` is a step as Maestro's pickled graph holds it (the Maestro side
  reads the pickle into these: maestro/study_graph.py); :class:`FluxJob` is a job as
  Flux's job-list and eventlog report it (broker/study_jobs.py);
- :func:`join` puts each step together with its current job (the graph's last job id,
  or the journal's, which is newer than the pickle), the jobs it waits on, and, for an
  ended job that did not succeed, the reason;
- :func:`levels` lays the graph out in levels (longest path from a root), and
  :func:`rows` folds each parameter group of a level into one line with counts
  (``simulate_* 997 done, 2 running, 1 failed``), unless it is unfolded on request;
- :func:`study_ended` says when a study is over (``status --watch`` stops there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from maestro_flux.model.journal import Sent
from maestro_flux.model.states import REASONS, RESULT_NAMES, STATE_NAMES, returncode_of

#: What a line says of a step, in the order counts are shown.
CATEGORIES = ("done", "running", "queued", "waiting", "not sent", "failed", "timed out",
              "cancelled", "unknown")
#: Categories of a step that will not move again.
FINAL = frozenset(("done", "failed", "timed out", "cancelled"))
#: Categories that are bad news: shown under a folded line, member by member.
BAD = ("failed", "timed out", "cancelled", "unknown")
#: Maestro states in which Maestro is done with a step.
MAESTRO_FINAL = frozenset(("FINISHED", "FAILED", "CANCELLED", "TIMEDOUT", "UNKNOWN"))

#: Flux's active states -> category.
_ACTIVE = {"NEW": "waiting", "DEPEND": "waiting", "PRIORITY": "queued", "SCHED": "queued",
           "RUN": "running", "CLEANUP": "running"}
#: Results of an inactive job -> category.
_RESULT = {"COMPLETED": "done", "FAILED": "failed", "TIMEOUT": "timed out",
           "CANCELED": "cancelled"}
#: Maestro states -> category, for a step whose job Flux does not know (purged, never
#: sent, or the broker cannot be reached).
_MAESTRO = {"FINISHED": "done", "FAILED": "failed", "TIMEDOUT": "timed out",
            "CANCELLED": "cancelled", "RUNNING": "running", "FINISHING": "running",
            "QUEUED": "queued", "PENDING": "queued", "HWFAILURE": "queued",
            "WAITING": "not sent", "INITIALIZED": "not sent", "UNKNOWN": "unknown"}


@dataclass(frozen=True)
class GraphStep:
    """One step of Maestro's graph, as plain data."""

    name: str  # the graph's name (real, even under maestro run --hashws)
    group: str  # the study step it was expanded from (its workspace's first folder)
    state: str  # Maestro's State name
    jobids: tuple[str, ...] = ()  # every job Maestro recorded, oldest first
    workspace: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    restarts: int = 0
    submitted: float | None = None  # Maestro's own times (epoch seconds)
    started: float | None = None
    ended: float | None = None
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class FluxJob:
    """One job as Flux reports it (job-list, completed by its eventlog)."""

    jobid: str  # f58, as the study stores it
    state: str  # NEW ... INACTIVE
    result: str | None = None
    queue: str | None = None
    nnodes: int | None = None
    nodelist: str | None = None
    t_submit: float | None = None
    t_depend: float | None = None  # entered DEPEND (validated)
    t_released: float | None = None  # its dependencies met (PRIORITY entered)
    t_sched: float | None = None
    t_run: float | None = None
    t_cleanup: float | None = None
    t_inactive: float | None = None
    exception_type: str | None = None
    exception_note: str | None = None
    returncode: int | None = None
    waiting_on: tuple[str, ...] = ()  # outstanding dependencies ("after-success=ID")

    @property
    def active(self) -> bool:
        return self.state != "INACTIVE"

    @property
    def label(self) -> str:
        """RUN, DEPEND, ..., or the result of an inactive job (COMPLETED, FAILED)."""
        return self.state if self.active else f"INACTIVE {self.result or '?'}"


def flux_job(jobid: str, entry: Mapping) -> FluxJob:
    """A FluxJob from one raw job-list entry (numeric state and result, as the broker
    sends them); ``t_priority`` is where the broker has it (0.88), else None."""
    state = STATE_NAMES.get(entry.get("state"), "UNKNOWN")
    result = RESULT_NAMES.get(entry.get("result")) if state == "INACTIVE" else None
    occurred = entry.get("exception_occurred")
    nodes = entry.get("nnodes")
    return FluxJob(
        jobid=jobid, state=state, result=result, queue=entry.get("queue") or None,
        nnodes=int(nodes) if nodes is not None else None,
        nodelist=entry.get("nodelist") or None,
        t_submit=entry.get("t_submit"), t_depend=entry.get("t_depend"),
        t_released=entry.get("t_priority"), t_sched=entry.get("t_sched"),
        t_run=entry.get("t_run"), t_cleanup=entry.get("t_cleanup"),
        t_inactive=entry.get("t_inactive"),
        exception_type=(entry.get("exception_type") or None) if occurred else None,
        exception_note=(entry.get("exception_note") or None) if occurred else None,
        returncode=returncode_of(entry.get("waitstatus"), result) if result else None,
        waiting_on=tuple(entry.get("dependencies") or ()))


#: Eventlog event -> the FluxJob time it sets (the first such event wins). The job
#: enters PRIORITY at ``depend`` (its dependencies met), RUN at ``alloc``, CLEANUP at
#: ``finish`` or at a fatal exception, whichever comes first, INACTIVE at ``clean``.
EVENT_TIMES = {"submit": "t_submit", "validate": "t_depend", "depend": "t_released",
               "priority": "t_sched", "alloc": "t_run", "finish": "t_cleanup",
               "clean": "t_inactive"}


def eventlog_times(events: Iterable[Mapping]) -> dict[str, float]:
    """The FluxJob times an eventlog gives."""
    found: dict[str, float] = {}
    for event in events:
        name, stamp = event.get("name"), event.get("timestamp")
        if stamp is None:
            continue
        key = EVENT_TIMES.get(name)
        if name == "exception" and (event.get("context") or {}).get("severity", 0) == 0:
            key = "t_cleanup"
        if key and key not in found:
            found[key] = float(stamp)
    return found


def with_eventlog(job: FluxJob, events: Iterable[Mapping]) -> FluxJob:
    """``job`` with the times its eventlog gives that job-list did not (the moment its
    dependencies were met, before flux-core 0.88)."""
    known = {key: value for key, value in eventlog_times(events).items()
             if getattr(job, key) is None}
    return replace(job, **known) if known else job


@dataclass(frozen=True)
class StepView:
    """One step as ``status`` shows it."""

    name: str
    group: str
    level: int
    maestro: str  # Maestro's state
    category: str  # one of CATEGORIES
    flux: str | None = None  # the job's Flux state (FluxJob.label), None if Flux does not know it
    jobid: str | None = None  # the current job
    jobs: int = 0  # jobs the step had (restarts and resubmissions count)
    waits_on: tuple[str, ...] = ()  # steps whose jobs it still waits on in Flux
    queue: str | None = None
    nodes: str | None = None
    nnodes: int | None = None
    runtime: float | None = None  # seconds in RUN (so far, for a running job)
    reason: str | None = None  # why an ended job did not succeed
    params: Mapping[str, str] = field(default_factory=dict)


def step_jobs(step: GraphStep, sent: Sequence[Sent]) -> tuple[str, ...]:
    """The step's jobs, oldest first: Maestro's, then any the journal has and the
    pickle not yet (the pickle is rewritten once per cycle, the journal at once).
    A job sent ahead and dropped is not the step's, unless the step never had another:
    then it is what Flux did with the step (its dependency could never be met, say)."""
    jobs = list(step.jobids)
    dropped = []
    for entry in sent:  # the step's own entries, or all (then others are skipped)
        if entry.step != step.name or not entry.jobid or entry.jobid in jobs:
            continue
        (dropped if entry.dropped else jobs).append(entry.jobid)
    return tuple(jobs or dropped)


def by_step(sent: Iterable[Sent]) -> dict[str, list[Sent]]:
    """The journal's entries of each step, in order."""
    found: dict[str, list[Sent]] = {}
    for entry in sent:
        found.setdefault(entry.step, []).append(entry)
    return found


def category(maestro: str, job: FluxJob | None) -> str:
    """What a step is, from its job when Flux knows it, else from Maestro's state. A job
    that Flux ended because a job it waited on did not succeed is the step's end as
    Maestro tells it (cancelled, when the study was)."""
    if job is not None:
        if job.active:
            return _ACTIVE.get(job.state, "unknown")
        if job.exception_type == "dependency" and maestro == "CANCELLED":
            return "cancelled"
        return _RESULT.get(job.result or "", "unknown")
    return _MAESTRO.get(maestro, "unknown")


def reason(job: FluxJob | None, err_line: str | None = None) -> str | None:
    """Why an ended job did not succeed, in one line: the exception (type and note),
    the exit code, and the last line of the step's ``.err``."""
    if job is None or job.active or job.result == "COMPLETED":
        return None
    parts = []
    if job.exception_type:
        explained = REASONS.get(job.exception_type, job.exception_type)
        if job.exception_type == "dependency":
            explained = "a job it waited on did not succeed"
        note = f" ({job.exception_type}: {job.exception_note})" if job.exception_note else \
            f" ({job.exception_type})"
        parts.append(explained + note)
    if job.returncode is not None and not (job.exception_type and job.returncode in (1, -128)
                                           and job.t_run is None):
        parts.append(f"exit code {job.returncode}")
    if err_line:
        parts.append(f".err: {err_line}")
    return "; ".join(parts) or job.result


def _describe_wait(description: str, owners: Mapping[str, str]) -> str:
    """``after-success=fABC`` -> the step whose job fABC is (else the description)."""
    _, _, target = description.partition("=")
    return owners.get(target, description)


def join(steps: Sequence[GraphStep], jobs: Mapping[str, FluxJob], sent: Sequence[Sent],
         err_lines: Mapping[str, str] | None = None, now: float | None = None) -> list[StepView]:
    """Every step with its current job. ``jobs``: what Flux knows, by f58 id (empty when
    the broker cannot be reached); ``err_lines``: each step's ``.err`` last line."""
    err_lines = err_lines or {}
    depth = levels(steps)
    by_name = {step.name: step for step in steps}
    owners: dict[str, str] = {}
    history: dict[str, tuple[str, ...]] = {}
    sent_of = by_step(sent)
    for step in steps:
        history[step.name] = step_jobs(step, sent_of.get(step.name, ()))
        for jobid in history[step.name]:
            owners[jobid] = step.name
    waits_journal = {entry.jobid: entry.waits_on for entry in sent if entry.jobid}
    return [_view(step, history[step.name], jobs, depth[step.name], owners, waits_journal,
                  by_name, err_lines.get(step.name), now) for step in steps]


def _view(step: GraphStep, ids: tuple[str, ...], jobs: Mapping[str, FluxJob], level: int,
          owners: Mapping[str, str], waits_journal: Mapping[str, tuple], by_name: Mapping,
          err_line: str | None, now: float | None) -> StepView:
    """One step's view, from its jobs (the current one last)."""
    current = ids[-1] if ids else None
    job = jobs.get(current) if current else None
    kind = category(step.state, job)
    waits: tuple[str, ...] = ()
    if job is not None and job.active and job.state in ("NEW", "DEPEND"):
        if job.waiting_on:
            waits = tuple(_describe_wait(d, owners) for d in job.waiting_on)
        else:  # the broker does not list them: the journal says what it waits on
            waits = tuple(owners.get(j or "", s) for s, j in waits_journal.get(current, ()))
    why = reason(job, err_line) if job is not None else None
    if job is None and kind in BAD:
        why = _reason_without_job(step, by_name, err_line, bool(ids))
    return StepView(
        name=step.name, group=step.group, level=level, maestro=step.state,
        category=kind, flux=job.label if job else None, jobid=current, jobs=len(ids),
        waits_on=waits, queue=job.queue if job else None,
        nodes=job.nodelist if job else None, nnodes=job.nnodes if job else None,
        runtime=_runtime(step, job, now), reason=why, params=dict(step.params))


def _runtime(step: GraphStep, job: FluxJob | None, now: float | None) -> float | None:
    """Seconds the step's job ran (so far), from Flux's times, else from Maestro's."""
    if job is not None and job.t_run is not None:
        end = job.t_cleanup or job.t_inactive or (now if job.active else None)
        return max(0.0, end - job.t_run) if end is not None else None
    if step.started and step.ended:
        return max(0.0, step.ended - step.started)
    return None


def _reason_without_job(step: GraphStep, by_name: Mapping[str, GraphStep],
                        err_line: str | None, had_job: bool) -> str:
    """Why a step Flux has no job of ended badly: a parent that did not succeed, or
    what Maestro and its ``.err`` say."""
    parents = [by_name[p] for p in step.parents if p in by_name]
    bad = [p.name for p in parents if p.state in ("FAILED", "TIMEDOUT", "CANCELLED")] or \
        [p.name for p in parents if p.state != "FINISHED"]
    if not had_job and bad:
        return f"not run: {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} did not finish"
    said = f"Maestro says {step.state}"
    return f"{said}; .err: {err_line}" if err_line else said


def levels(steps: Sequence[GraphStep]) -> dict[str, int]:
    """Each step's level: 0 for a root, else one more than its deepest parent."""
    by_name = {step.name: step for step in steps}
    depth: dict[str, int] = {}
    for start in steps:
        if start.name in depth:
            continue
        stack = [(start.name, False)]
        while stack:
            name, expanded = stack.pop()
            if name in depth:
                continue
            parents = [p for p in by_name[name].parents if p in by_name]
            if expanded:
                depth[name] = 1 + max((depth[p] for p in parents), default=-1)
                continue
            stack.append((name, True))
            stack.extend((p, False) for p in parents if p not in depth)
    return depth


@dataclass(frozen=True)
class Row:
    """One line of the status view: a step, or a folded parameter group of a level."""

    level: int
    group: str
    steps: tuple[StepView, ...]  # one for a step line; every member for a folded group
    folded: bool = False

    @property
    def label(self) -> str:
        return f"{self.group}_*" if self.folded else self.steps[0].name

    @property
    def counts(self) -> dict[str, int]:
        """Category -> how many members, in CATEGORIES order."""
        counted = Counter(view.category for view in self.steps)
        return {name: counted[name] for name in CATEGORIES if counted[name]}

    @property
    def category(self) -> str:
        """The worst category among its members (a folded line's colour)."""
        counts = self.counts
        for name in ("failed", "timed out", "unknown", "cancelled", "running", "queued",
                     "waiting", "not sent", "done"):
            if counts.get(name):
                return name
        return "unknown"

    @property
    def bad(self) -> tuple[StepView, ...]:
        """Members that ended badly, shown under a folded line."""
        return tuple(view for view in self.steps if view.category in BAD)


def counts_text(counts: Mapping[str, int]) -> str:
    """``997 done, 2 running, 1 failed``."""
    return ", ".join(f"{n} {name}" for name, n in counts.items())


def rows(views: Sequence[StepView], unfold: Iterable[str] | bool = (),
         fold_above: int = 1) -> list[Row]:
    """Lines in level order. A level's parameter group of more than ``fold_above``
    steps is one folded line, unless ``unfold`` is True or names the group (its study
    step's name, with or without ``_*``)."""
    unfold_all = unfold is True
    named = set() if isinstance(unfold, bool) else {u.removesuffix("_*") for u in unfold}
    buckets: dict[tuple[int, str], list[StepView]] = {}
    for view in views:
        buckets.setdefault((view.level, view.group), []).append(view)
    lines = []
    for (level, group), members in sorted(buckets.items(), key=lambda item: item[0][0]):
        if len(members) > max(1, fold_above) and not unfold_all and group not in named:
            lines.append(Row(level, group, tuple(members), folded=True))
        else:
            lines.extend(Row(level, group, (view,)) for view in members)
    return lines


def fold_names(names: Sequence[str], groups: Mapping[str, str], sizes: Mapping[str, int],
               limit: int = 3) -> str:
    """Step names said short: a whole parameter group as ``group_* (N)``, else the first
    ``limit`` names and how many more."""
    by_group: dict[str, list[str]] = {}
    for name in names:
        by_group.setdefault(groups.get(name, name), []).append(name)
    parts: list[str] = []
    for group, members in by_group.items():
        if len(members) > 1 and len(members) == sizes.get(group):
            parts.append(f"{group}_* ({len(members)})")
        else:
            parts.extend(members)
    if len(parts) > limit:
        return ", ".join(parts[:limit]) + f" +{len(parts) - limit}"
    return ", ".join(parts)


def auto_fold_above(steps: int, height: int) -> int:
    """Fold nothing when every step fits the screen (``height`` lines for steps), else
    every parameter group of more than one step."""
    return steps if steps <= height else 1


def study_ended(views: Sequence[StepView], conductor_alive: bool | None,
                cancelled: bool = False) -> bool:
    """True once nothing more will happen: Maestro is done with every step, or its
    conductor is gone and Flux has no job of the study left to run."""
    if not views:
        return conductor_alive is False  # never staged: over if its conductor is gone
    if all(view.maestro in MAESTRO_FINAL for view in views):
        return True
    if conductor_alive is False or cancelled:
        return not any(view.category in ("running", "queued", "waiting") for view in views)
    return False


@dataclass(frozen=True)
class Node:
    """A node of the drawn graph: one step, or a folded parameter group of a level."""

    key: str
    label: str
    level: int
    steps: tuple[StepView, ...]
    folded: bool = False

    @property
    def category(self) -> str:
        return Row(self.level, self.label, self.steps, self.folded).category

    @property
    def counts(self) -> dict[str, int]:
        return Row(self.level, self.label, self.steps, self.folded).counts


def graph_nodes(views: Sequence[StepView], parents: Mapping[str, Sequence[str]],
                fold_above: int) -> tuple[list[Node], list[tuple[str, str]]]:
    """The nodes of the drawn graph, each level's in an order that keeps edges short
    (by the mean position of their parents: one barycentre pass), and its edges. A
    level's parameter group of more than ``fold_above`` steps is one node."""
    folded_rows = rows(views, (), fold_above)
    node_of: dict[str, str] = {}
    nodes: dict[str, Node] = {}
    for row in folded_rows:
        key = f"{row.group}_*@{row.level}" if row.folded else row.steps[0].name
        label = f"{row.label} ({len(row.steps)})" if row.folded else row.steps[0].name
        nodes[key] = Node(key, label, row.level, row.steps, row.folded)
        for view in row.steps:
            node_of[view.name] = key
    edges = sorted({(node_of[p], node_of[child]) for child, ps in parents.items()
                    for p in ps if p in node_of and child in node_of
                    and node_of[p] != node_of[child]})
    into: dict[str, list[str]] = {}
    for source, target in edges:
        into.setdefault(target, []).append(source)
    position: dict[str, float] = {}
    ordered: list[Node] = []
    for level in sorted({node.level for node in nodes.values()}):
        layer = [node for node in nodes.values() if node.level == level]
        layer.sort(key=lambda node: (_barycentre(into.get(node.key, ()), position),
                                     node.key))
        for index, node in enumerate(layer):
            position[node.key] = index - (len(layer) - 1) / 2
        ordered.extend(layer)
    return ordered, edges


def _barycentre(parents: Sequence[str], position: Mapping[str, float]) -> float:
    placed = [position[p] for p in parents if p in position]
    return sum(placed) / len(placed) if placed else float("inf")


@dataclass(frozen=True)
class Snapshot:
    """The study at one moment: what ``status`` shows and ``--json`` prints."""

    study: str
    root: str
    uri: str  # the broker asked, in words
    taken: float
    steps: tuple[StepView, ...]
    broker: str | None = None  # None: Flux answered; else the one line why not
    conductor: str | None = None  # its state in words ("running, pid 12 on host")
    conductor_alive: bool | None = None
    ended: bool = False
    sleep: int | None = None  # the conductor's sleep, if the journal knows it

    def totals(self) -> dict[str, int]:
        counted = Counter(view.category for view in self.steps)
        return {name: counted[name] for name in CATEGORIES if counted[name]}
