"""Every name of Maestro's that the pipeline relies on beyond the adapter API.

Maestro's ScriptAdapter interface hands an adapter one step at a time, so
sending a cycle's steps together (pipeline.py) reaches into the ExecutionGraph.
This module lists each name used, and :func:`missing` says which of them a given
Maestro lacks, so an upgrade that renames one turns the pipeline off (with a log
line naming it) instead of breaking the conductor. ``tests/test_maestro_names.py``
fails, naming the name, when the installed Maestro lacks one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import Iterator
from types import SimpleNamespace

from maestro_flux.maestro.maestro_imports import import_maestro

#: maestrowf releases the suite has run the pipeline against; any other runs one
#: submit per step, Maestro's own loop untouched.
TESTED_VERSIONS = ("1.2.0", "1.2.1")

GRAPH_LOGGER = "maestrowf.datastructures.core.executiongraph"
#: ExecutionGraph: the method wrapped, and what the wrapper reads or sets.
GRAPH_METHODS = ("execute_ready_steps", "bfs_subtree")
GRAPH_ATTRIBUTES = (
    "_adapter",         # private: the batch block every adapter is built from (stamped)
    "values",           # name -> StepRecord
    "in_progress",      # names of steps with a job
    "ready_steps",      # the queue of steps to submit (resubmit.py, ahead.py)
    "failed_steps",
    "dry_run",
)
#: executiongraph._StepRecord (private class): where a step's job ids live, and how
#: a refused step is ended.
RECORD_CLASS = "_StepRecord"
RECORD_METHODS = ("mark_end",)
RECORD_ATTRIBUTES = ("jobid", "name")
#: Maestro's State members the pipeline sets.
STATES = ("FAILED",)


def maestro_version() -> str:
    return importlib.metadata.version("maestrowf")


def missing() -> list[str]:
    """The listed names this Maestro lacks, as ``Class.name``."""
    graph_module = import_maestro("maestrowf.datastructures.core.executiongraph")
    if not hasattr(graph_module, RECORD_CLASS):
        return [f"executiongraph.{RECORD_CLASS}"]
    try:  # instances: most of the names are attributes set by __init__
        # A stand-in step: StudyStep's package may still be importing (see pipeline.py).
        step = SimpleNamespace(run={"cmd": "", "restart": ""})
        with _quiet(GRAPH_LOGGER):  # its constructor logs a banner at INFO
            graph = graph_module.ExecutionGraph()
        record = getattr(graph_module, RECORD_CLASS)("", step)
    except Exception as err:  # a changed constructor is a missing name too
        return [f"ExecutionGraph/{RECORD_CLASS} construction ({type(err).__name__}: {err})"]
    wanted = [("ExecutionGraph", graph, GRAPH_METHODS + GRAPH_ATTRIBUTES),
              (RECORD_CLASS, record, RECORD_METHODS + RECORD_ATTRIBUTES),
              ("State", import_maestro("maestrowf.abstracts.enums").State, STATES)]
    return [f"{owner}.{name}" for owner, obj, names in wanted for name in names
            if not _has(obj, name)]


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


def _has(obj: object, name: str) -> bool:
    """A class attribute (method, property) or one set on the instance; properties are
    not evaluated, since the stand-in step has little behind them."""
    return hasattr(type(obj), name) or name in getattr(obj, "__dict__", {}) or (
        isinstance(obj, type) and hasattr(obj, name))
