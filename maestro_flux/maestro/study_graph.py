"""Maestro's pickled graph of a study, read into plain data (model/study_view.py),
for the views (``maestro-flux status`` and ``report``).

:func:`read_graph` unpickles the ExecutionGraph the conductor wrote last
(``<root>/<study name>.pkl``, else the whole copy the pipeline keeps in
``meta/maestro-flux/graph.pkl``); graph.py, the one door to Maestro's internals,
turns each of its steps into a GraphStep. Steps are keyed by the graph's names, which
are the real step names even under ``maestro run --hashws``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dill

from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro.journal import FOLDER
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.study_view import GraphStep

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
            graph = _load(path)
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


#: Tries of a pickle that will not load: Maestro may be rewriting it in place (every
#: cycle) just then; a view that fell back to the older copy at once would show the
#: study as it was a cycle ago.
TRIES, PAUSE = 3, 0.2


def _load(path: Path) -> Any:
    for attempt in range(TRIES):
        try:
            with open(path, "rb") as handle:
                return dill.load(handle)
        except FileNotFoundError:
            raise
        except Exception:
            if attempt == TRIES - 1:
                raise
            time.sleep(PAUSE)
    raise AssertionError("unreachable")


def _plain(graph: Any, path: Path, root: Path) -> StudyGraph:
    name, steps, adapter, cancelled = maestro_graph.plain_steps(graph, root)
    return StudyGraph(name, steps, adapter, cancelled, path)
