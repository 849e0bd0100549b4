"""The one door to Maestro's internals: ExecutionGraph, _StepRecord, StudyStep,
Study and Conductor.

Maestro's ScriptAdapter interface hands an adapter one step at a time; sending a
cycle's steps together, sending steps ahead, resuming, retrying and cancelling
chosen steps reach into the graph Maestro's conductor drives. Every such reach is
a function here, and nothing else in maestro-flux touches those objects:
maestro_names.py lists every name used here (tests/test_maestro_names.py derives
that list from this file, and fails on any use elsewhere), so a Maestro upgrade
that renames one turns the pipeline off (gate.py) instead of breaking a study.

Everything here takes the graph (or a record, a step, a conductor) as its first
argument and keeps no state of its own.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dill

from maestro_flux.maestro.maestro_imports import import_maestro
from maestro_flux.model.ahead import StepView
from maestro_flux.model.selection import StepFacts
from maestro_flux.model.study_view import GraphStep

LOGGER = logging.getLogger(__name__)
GRAPH_MODULE = "maestrowf.datastructures.core.executiongraph"
CONDUCTOR_MODULE = "maestrowf.conductor"
ENUMS_MODULE = "maestrowf.abstracts.enums"
SOURCE = "_source"  # Maestro's root node (executiongraph.SOURCE)


def _enums() -> Any:
    return import_maestro(ENUMS_MODULE)


# -- steps -------------------------------------------------------------------
def step_name(step: Any) -> str:
    """The graph's name of a StudyStep: with ``maestro run --hashws`` its ``name`` is a
    hashed nickname, while the graph, the status table and our state use the real one."""
    return step.real_name


def file_name(step: Any) -> str:
    """The name Maestro gives a step's files (its nickname under ``--hashws``)."""
    return step.name


def step_run(step: Any) -> dict:
    """The step's ``run`` block (cmd, restart, nodes, procs...)."""
    return step.run


# -- reading the graph ------------------------------------------------------
def batch_block(graph: Any) -> dict:
    """The batch block every adapter of the study is built from (stamped by us)."""
    return graph._adapter


def is_ours(graph: Any, key: str) -> bool:
    """True for a graph whose batch block names adapter ``key`` and that submits."""
    block = graph._adapter
    return isinstance(block, dict) and block.get("type") == key and not graph.dry_run


def names(graph: Any) -> list[str]:
    """Every step's name, in the graph's order."""
    return [name for name in graph.values if name != SOURCE]


def study_name(graph: Any) -> str:
    return graph.name


def state(graph: Any, name: str) -> str:
    """The name of the step's Maestro State."""
    record = graph.values[name]
    return record.status.name


def jobids(graph: Any, name: str) -> list[str]:
    """The step's job ids, oldest first (Maestro polls the last)."""
    record = graph.values[name]
    return list(record.jobid)


def workspace(graph: Any, name: str) -> str:
    record = graph.values[name]
    return record.workspace.value


def first_workspace(graph: Any) -> str | None:
    """A step's workspace, from which the study's directory is found."""
    name = next(iter(names(graph)), None)
    return workspace(graph, name) if name else None


def in_progress(graph: Any) -> set[str]:
    """The steps Maestro polls (their job is in Flux, or awaits resubmission)."""
    return graph.in_progress


def throttle(graph: Any) -> int:
    """Maestro's ``-t``: most steps polled at once (0: no limit)."""
    return graph._submission_throttle


def restarts(graph: Any, name: str) -> int:
    record = graph.values[name]
    return record._num_restarts


def is_canceled(graph: Any) -> bool:
    return graph.is_canceled


def parents(graph: Any) -> dict[str, list[str]]:
    """Step -> the steps it depends on, in the graph's order."""
    found: dict[str, list[str]] = {name: [] for name in names(graph)}
    for parent, children in graph.adjacency_table.items():
        if parent != SOURCE:
            for child in children:
                found[child].append(parent)
    return found


def snapshot(graph: Any) -> dict[str, StepView]:
    """Every step of the graph, in its order, as model/ahead.py reads it."""
    ups, polled = parents(graph), graph.in_progress
    return {name: StepView(name, tuple(ups[name]), record.status.name,
                           record.jobid[-1] if record.jobid else None, name in polled)
            for name, record in graph.values.items() if name != SOURCE}


def step_facts(graph: Any) -> dict[str, StepFacts]:
    """Each step's state and parents, in the graph's order (model/selection.py)."""
    ups = parents(graph)
    return {name: StepFacts(state(graph, name), tuple(ups[name])) for name in names(graph)}


def subtree(graph: Any, name: str) -> list[str]:
    """The step and every step below it."""
    return list(graph.bfs_subtree(name)[0])


def polled_ids(graph: Any) -> list[str]:
    """The last job id of every step Maestro polls."""
    records = (graph.values[name] for name in graph.in_progress)
    return [record.jobid[-1] for record in records if record.jobid]


def watched_jobs(graph: Any) -> tuple[list[str], list[str]]:
    """(the last job id of every step Maestro polls, those of the steps it knows run)."""
    polled, running = [], []
    for name in graph.in_progress:
        record = graph.values[name]
        if record.jobid:
            polled.append(record.jobid[-1])
            if record.status.name in ("RUNNING", "FINISHING"):
                running.append(record.jobid[-1])
    return polled, running


def completion(graph: Any) -> Any:
    """Maestro's StudyStatus of the graph (RUNNING while anything is left)."""
    return graph._check_study_completion()


# -- changing the graph ------------------------------------------------------
def set_job(graph: Any, name: str, placeholder: str | None, jobid: str) -> None:
    """Put ``jobid`` on the step in place of ``placeholder`` (appended if Maestro never
    stored it), and have Maestro poll it."""
    record = graph.values[name]
    ids = record.jobid
    if placeholder is not None and placeholder in ids:
        ids[ids.index(placeholder)] = jobid
    else:
        ids.append(jobid)
    graph.in_progress.add(name)


def take_back(graph: Any, name: str, placeholder: str) -> None:
    """Undo a submission Maestro recorded (its placeholder) whose job never existed:
    the step is ready again, to be submitted as if for the first time."""
    record = graph.values[name]
    if placeholder in record.jobid:
        record.jobid.remove(placeholder)
    graph.in_progress.discard(name)
    record.status = _enums().State.INITIALIZED
    if name not in graph.ready_steps:
        graph.ready_steps.append(name)


def fail_subtree(graph: Any, name: str, placeholder: str | None = None) -> list[str]:
    """Fail the step and every step below it, as Maestro does when a submit fails."""
    record, failed = graph.values[name], _enums().State.FAILED
    if placeholder is not None and placeholder in record.jobid:
        record.jobid.remove(placeholder)
    graph.in_progress.discard(name)
    below = subtree(graph, name)
    for each in below:
        graph.failed_steps.add(each)
        record = graph.values[each]
        record.mark_end(failed)
    return below


def adopt(graph: Any, name: str, ids: Iterable[str]) -> None:
    """Give a step jobs it did not know (resume): it is polled from now on."""
    record = graph.values[name]
    record.jobid.extend(ids)
    if record.status.name == "INITIALIZED":
        record.mark_submitted()
    graph.in_progress.add(name)
    if name in graph.ready_steps:
        graph.ready_steps.remove(name)


def reset_for_retry(graph: Any, names: Iterable[str]) -> None:
    """Make the steps new again, as ``maestro run`` staged them: INITIALIZED, no restart
    made, waiting on their parents; their earlier job ids stay (Maestro polls the last
    only, and ``status.csv`` shows it until a new one comes). The study is no longer
    canceled."""
    initialized, ups = _enums().State.INITIALIZED, parents(graph)
    for name in names:
        record = graph.values[name]
        record.status = initialized
        record._num_restarts = 0
        record._submit_time = record._start_time = record._end_time = None
        for done in (graph.completed_steps, graph.failed_steps, graph.cancelled_steps,
                     graph.in_progress):
            done.discard(name)
        if name in graph.ready_steps:
            graph.ready_steps.remove(name)
        graph._dependencies[name] = set(ups[name])
    graph.is_canceled = False


def cancel_steps(graph: Any, names: Iterable[str]) -> list[str]:
    """End the steps CANCELLED, as Maestro ends the steps of a canceled study; returns
    the jobs Maestro polled for them (to cancel in Flux)."""
    canceled, jobs = _enums().State.CANCELLED, []
    for name in names:
        record = graph.values[name]
        if name in graph.in_progress and record.jobid:
            jobs.append(record.jobid[-1])
        graph.in_progress.discard(name)
        if name in graph.ready_steps:
            graph.ready_steps.remove(name)
        record.mark_end(canceled)
        graph.cancelled_steps.add(name)
    return jobs


def set_restarts(graph: Any, name: str, count: int) -> None:
    record = graph.values[name]
    record._num_restarts = count


def set_limits(graph: Any, throttle: int | None = None, rlimit: int | None = None) -> None:
    """Maestro's ``-t`` and ``-r`` on a loaded graph (None: unchanged)."""
    if throttle is not None:
        graph.update_throttle(throttle)
    if rlimit is not None:
        graph.update_rlimit(rlimit)


def free_resubmissions(graph: Any) -> set[str]:
    """Take the steps awaiting resubmission after a HWFAILURE out of ``in_progress``.

    Maestro 1.2 appends such a step to ``ready_steps`` but leaves it in
    ``in_progress``, which its throttle counts: with the throttle full of them none
    is resubmitted, ever. Maestro adds a step back when it submits it.
    """
    waiting = set(graph.ready_steps) & set(graph.in_progress)
    if waiting:
        graph.in_progress.difference_update(waiting)
        graph.ready_steps = deque(dict.fromkeys(graph.ready_steps))
    return waiting


def ready(graph: Any) -> Any:
    """Maestro's queue of ready steps."""
    return graph.ready_steps


def set_ready(graph: Any, queue: Any) -> None:
    """Replace Maestro's queue of ready steps (pipeline.py's, for one round)."""
    graph.ready_steps = queue


def plain_ready(graph: Any) -> None:
    """Make the queue of ready steps a plain deque again, as Maestro pickles it."""
    graph.ready_steps = deque(graph.ready_steps)


def write_scripts(graph: Any, name: str, adapter: Any, keep_out_of_tmp: bool) -> tuple[Any, str]:
    """Set up a step's workspace and write its scripts as Maestro does; returns the
    StudyStep and its script. ``keep_out_of_tmp``: in the workspace even under
    ``--usetmp`` (a job sent ahead runs it later, after any clean-up of the folder)."""
    record = graph.values[name]
    record.setup_workspace()
    record.generate_script(adapter, "" if keep_out_of_tmp else graph._tmp_dir)
    return record.step, record.script


# -- the conductor's cycle ----------------------------------------------------
def graph_class(load: bool = False) -> type | None:
    """ExecutionGraph once its module has been imported, else None; ``load`` imports
    it (not while Maestro may be importing it: the import could be circular)."""
    module = import_maestro(GRAPH_MODULE) if load else sys.modules.get(GRAPH_MODULE)
    return getattr(module, "ExecutionGraph", None)


def wrap_cycle(graph_class: type, make: Callable[[Any, Callable], Callable], mark: str) -> bool:
    """Wrap ``ExecutionGraph.execute_ready_steps`` once with ``make(graph, original)``;
    False if it was wrapped already."""
    if getattr(graph_class, mark, False):
        return False
    original = graph_class.execute_ready_steps

    def wrapped(self: Any) -> Any:
        return make(self, original)()

    wrapped.__wrapped__ = original
    graph_class.execute_ready_steps = wrapped
    setattr(graph_class, mark, True)
    return True


def unwrapped_cycle(graph: Any) -> Callable[[], Any]:
    """Maestro's own round of the graph (its checks, its submissions)."""
    method = type(graph).execute_ready_steps
    return lambda: getattr(method, "__wrapped__", method)(graph)


# -- a study's files, and a conductor on them ----------------------------------
def _conductor() -> Any:
    return import_maestro(CONDUCTOR_MODULE).Conductor


def load_batch(root: Path) -> dict:
    """The study's batch block (batch.info)."""
    return _conductor().load_batch(str(root)) or {}


def load_study(root: Path) -> Any:
    """The study Maestro pickled at launch."""
    return _conductor().load_study(str(root))


def pickle_path(root: Path, study: Any) -> Path:
    """Where Maestro's conductor pickles the graph after each cycle."""
    return root / f"{study.name}.pkl"


@dataclass
class LoadedGraph:
    graph: Any
    whence: str


def load_graph(root: Path, study: Any, backup: Path, batch: dict) -> LoadedGraph:
    """The graph the conductor pickled last (or our whole copy, if that one is torn;
    or the study staged afresh, if no cycle ever finished)."""
    for path in (pickle_path(root, study), backup):
        try:
            with open(path, "rb") as handle:
                return LoadedGraph(dill.load(handle), f"the graph pickled at {path}")
        except FileNotFoundError:
            continue
        except Exception as err:  # torn by a kill mid-write: try the copy
            LOGGER.warning("maestro-flux: %s cannot be read (%s: %s)", path,
                           type(err).__name__, err)
    _, graph = study.stage()  # as maestro run stages it
    graph.set_adapter(batch)
    return LoadedGraph(graph, "the study staged afresh (no graph was pickled)")


def request_files(root: Path) -> tuple[Path, Path]:
    """Where ``maestro cancel`` and ``maestro update`` leave their requests."""
    conductor = _conductor()
    return root / conductor._cancel_lock, root / conductor._study_update


def replace_conductor_sleep(sleep: Callable[[float], None]) -> None:
    """Have Maestro's conductor loop wait between cycles with ``sleep``."""
    import_maestro(CONDUCTOR_MODULE).sleep = sleep


def setup_logging(study: Any, root: Path) -> None:
    """Log to the study's log file and the terminal, as Maestro's conductor does."""
    import_maestro(CONDUCTOR_MODULE).setup_logging(study.name, str(root), 2, None, True)


def monitor(study: Any, graph: Any, root: Path, sleep: int) -> Any:
    """Maestro's own conductor loop on ``graph``; its final StudyStatus."""
    conductor = _conductor()(study)
    conductor._pkl_path, conductor._exec_dag = str(root), graph
    conductor._setup = True
    conductor.sleep_time = sleep
    try:
        return conductor.monitor_study()
    finally:
        conductor.cleanup()


def write_status(graph: Any, root: Path) -> None:
    """Maestro's status.csv of the graph."""
    graph.write_status(str(root))


def pickle(graph: Any, root: Path) -> None:
    graph.pickle(str(root / f"{graph.name}.pkl"))


# -- a study's graph as plain data (the views) -----------------------------------------
def _time(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _group(root: str, workspace: str, name: str) -> str:
    """The study step a step was expanded from: its workspace's first folder under the
    study (``simulate/SIZE.2`` -> ``simulate``; with --hashws the folder is the hash's)."""
    path = os.path.normpath(workspace)
    if not path.startswith(root + os.sep):
        return name
    return path[len(root) + 1:].split(os.sep, 1)[0] or name


def plain_steps(graph: Any, root: Path) -> tuple[str, tuple[GraphStep, ...], dict, bool]:
    """(the study's name, its steps as plain data, its batch block, canceled?)."""
    ups, top, steps = parents(graph), os.path.normpath(str(root)), []
    for key, record in graph.values.items():
        if key == SOURCE or record is None:
            continue
        workspace = str(record.workspace.value)
        steps.append(GraphStep(
            name=record.name, group=_group(top, workspace, record.name),
            state=record.status.name, jobids=tuple(str(j) for j in record.jobid),
            workspace=workspace,
            params={str(k): str(v) for k, v in (record.params or {}).items()},
            restarts=int(record.restarts), submitted=_time(record._submit_time),
            started=_time(record._start_time), ended=_time(record._end_time),
            parents=tuple(ups.get(key, ()))))
    return graph.name, tuple(steps), dict(graph._adapter or {}), bool(graph.is_canceled)


# -- staging a study that does not run (render) --------------------------------
@dataclass(frozen=True)
class StagedStep:
    """One expanded step (parameters applied) and its workspace."""

    name: str
    step: Any
    workspace: str


def staged_steps(spec: Any, path: str, out_dir: str) -> Iterator[StagedStep]:
    """Expand the study into ``out_dir`` the way Maestro's conductor does."""
    Study = import_maestro("maestrowf.datastructures.core").Study
    Variable = import_maestro("maestrowf.datastructures.environment").Variable
    environment = spec.get_study_environment()
    environment.add(Variable("SPECROOT", os.path.dirname(os.path.abspath(path))))
    study = Study(spec.name, spec.description, studyenv=environment,
                  parameters=spec.get_parameters(), steps=spec.get_study_steps(),
                  out_path=out_dir)
    quiet = logging.getLogger("maestrowf")
    level, quiet.level = quiet.level, logging.WARNING  # Maestro logs every step at INFO
    try:
        study.setup_workspace()
        study.configure_study(dry_run=True)
        study.setup_environment()
        _, dag = study.stage()
        study.store_metadata()
    finally:
        quiet.level = level
    _conductor().store_batch(out_dir, dict(spec.batch))
    for name in dag.topological_sort():
        if name == SOURCE:
            continue
        record = dag.values[name]
        os.makedirs(record.workspace.value, exist_ok=True)
        yield StagedStep(name, record.step, record.workspace.value)
