"""Maestro's pickled graph of a study, read into plain data (model/study_view.py).

The one place of the views (``maestro-flux status`` and ``report``) that touches
Maestro's objects: :func:`read_graph` unpickles the ExecutionGraph the conductor
wrote last (``<root>/<study name>.pkl``, else the whole copy the pipeline keeps in
``meta/maestro-flux/graph.pkl``) and turns each ``_StepRecord`` into a GraphStep.
Steps are keyed by the graph's names, which are the real step names even under
``maestro run --hashws``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dill

from maestro_flux.maestro.journal import FOLDER
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.study_view import GraphStep

SOURCE = "_source"  # Maestro's root node (executiongraph.SOURCE)
BACKUP = "graph.pkl"  # the pipeline's last whole copy (maestro/pipeline.py PICKLE_BACKUP)


class NoGraphYet(MaestroFluxError):
    """No graph is pickled in the study yet: its conductor has not finished a cycle."""


@dataclass(frozen=True)
class StudyGraph:
    """A study's graph as plain data."""

    name: str
    steps: tuple[GraphStep, ...]
    adapter: dict  # the batch block
    cancelled: bool
    path: Path  # the file it was read from


def pickles(root: Path, name: str | None) -> list[Path]:
    """Where the graph may be, best first: the study's own pickle (by the study's name
    when known, else the one ``*.pkl`` Maestro wrote beside ``batch.info``), then the
    pipeline's copy."""
    own = [root / f"{name}.pkl"] if name else []
    own += sorted(p for p in root.glob("*.pkl") if not p.name.endswith(".study.pkl")
                  and p not in own)
    return [*own, root / FOLDER / BACKUP]


def read_graph(root: Path, name: str | None = None) -> StudyGraph:
    """The study's graph; MaestroFluxError (one line naming the file) if none can be read."""
    tried = []
    for path in pickles(root, name):
        try:
            with open(path, "rb") as handle:
                graph = dill.load(handle)
        except FileNotFoundError:
            continue
        except Exception as err:  # torn by a kill mid-write, or not Maestro's
            tried.append(f"{path}: {type(err).__name__}: {err}")
            continue
        try:
            return _plain(graph, path, root)
        except Exception as err:  # not an ExecutionGraph
            tried.append(f"{path}: not a Maestro graph ({type(err).__name__}: {err})")
    if tried:
        raise MaestroFluxError(f"cannot read the study's graph: {tried[0]}")
    raise NoGraphYet(f"{root}: no graph pickled yet ({root}/<study>.pkl): its "
                           "conductor has not finished a cycle")


def _time(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _group(root: str, workspace: str, name: str) -> str:
    """The study step a step was expanded from: its workspace's first folder under the
    study (``simulate/SIZE.2`` -> ``simulate``; with --hashws the folder is the hash's)."""
    path = os.path.normpath(workspace)
    if not path.startswith(root + os.sep):
        return name
    return path[len(root) + 1:].split(os.sep, 1)[0] or name


def _plain(graph: Any, path: Path, root: Path) -> StudyGraph:
    parents: dict[str, list[str]] = {}
    for parent, children in graph.adjacency_table.items():
        for child in children:
            if parent != SOURCE:
                parents.setdefault(child, []).append(parent)
    steps = []
    top = os.path.normpath(str(root))
    for key, record in graph.values.items():
        if key == SOURCE or record is None:
            continue
        name = record.name
        workspace = str(record.workspace.value)
        steps.append(GraphStep(
            name=name, group=_group(top, workspace, name), state=record.status.name,
            jobids=tuple(str(j) for j in record.jobid), workspace=workspace,
            params={str(k): str(v) for k, v in (record.params or {}).items()},
            restarts=int(record.restarts), submitted=_time(record._submit_time),
            started=_time(record._start_time), ended=_time(record._end_time),
            parents=tuple(parents.get(key, ()))))
    return StudyGraph(graph.name, tuple(steps), dict(graph._adapter or {}),
                      bool(graph.is_canceled), path)
