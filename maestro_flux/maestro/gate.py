"""Whether the conductor cycle of pipeline.py runs in this process, and installing it.

The cycle wraps ``ExecutionGraph.execute_ready_steps`` (through graph.py, the door to
Maestro's internals). It is enabled only on the maestrowf versions in
maestro_names.TESTED_VERSIONS and when every name maestro_names lists exists; else,
or with ``MAESTRO_FLUX_PIPELINE=0``, Maestro's loop runs untouched (one submit per
step, no dependencies held by Flux, no resume) and the log says why, once.

The wrapper also stamps the graph's batch block with an id of the study's own
(study_state.STUDY_KEY), so that every adapter Maestro builds from it finds the
same StudyState.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
import time
import uuid
from typing import Any

from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro import maestro_names
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.pipeline import Conductor
from maestro_flux.maestro.study_state import STUDIES, STUDY_KEY

LOGGER = logging.getLogger(__name__)
SWITCH = "MAESTRO_FLUX_PIPELINE"
#: ``0``: the conductor sleeps its whole -s between cycles, as Maestro's does.
WAKE_SWITCH = "MAESTRO_FLUX_WAKE"
#: Set on ExecutionGraph once wrapped: the class itself records that it is.
MARK = "_maestro_flux_pipeline"


def why_off() -> str | None:
    """Why the pipeline cannot be used in this process (None: it can)."""
    if os.environ.get(SWITCH, "1") == "0":
        return f"{SWITCH}=0"
    version = maestro_names.maestro_version()
    if version not in maestro_names.TESTED_VERSIONS:
        return (f"maestrowf {version} is not a version it was tested with "
                f"({', '.join(maestro_names.TESTED_VERSIONS)})")
    lacking = maestro_names.missing()
    if lacking:
        return f"this Maestro lacks {', '.join(lacking)}"
    return None


def conductor_line(options: Any) -> tuple[bool, str]:
    """(pipeline on, one line) on what the conductor's cycles will do for a study with
    these batch options, for ``doctor`` and ``render``."""
    reason = why_off()
    if reason:
        return False, (f"one submit per step, dependencies not held by Flux, and no resume: "
                       f"the cycle pipeline is off ({reason})")
    held = ("dependencies held by Flux: a step is sent as soon as its parents are in Flux "
            "(afterok)" if options.flux_dependencies else
            "dependencies not held by Flux (flux_dependencies: false): each step waits for "
            "a cycle after its parents end")
    wake = ("the conductor wakes when a job starts or ends, or on maestro cancel"
            if os.environ.get(WAKE_SWITCH, "1") != "0" else
            f"the conductor sleeps its whole -s between cycles ({WAKE_SWITCH}=0)")
    return True, f"a cycle's jobs are sent together; {held}; {wake}"


def _cycle(graph: Any, original: Any) -> Any:
    """The wrapped ``execute_ready_steps`` of one graph: ours, or Maestro's own."""
    if not maestro_graph.is_ours(graph, FluxAdapter.key) or os.environ.get(SWITCH, "1") == "0":
        return lambda: original(graph)
    maestro_graph.batch_block(graph).setdefault(STUDY_KEY, uuid.uuid4().hex)
    if os.environ.get(WAKE_SWITCH, "1") != "0":
        # Here, not at install: the conductor's module may still be importing then; by
        # the first cycle it runs the loop whose sleep this replaces.
        maestro_graph.replace_conductor_sleep(conductor_sleep)
    return Conductor(graph, lambda: original(graph)).cycle


def install() -> bool:
    """Wrap ``ExecutionGraph.execute_ready_steps`` once; False if off (logged once).
    Called at registration, or by :class:`WhenGraphImported` once the graph exists."""
    graph_class = maestro_graph.graph_class(load=True)
    if getattr(graph_class, MARK, False):
        return True
    reason = why_off()
    if reason:
        STUDIES.notices.log_once(LOGGER, logging.WARNING, "pipeline-off", "maestro-flux: "
                                 "submitting one step at a time, dependencies not held by "
                                 "Flux (the cycle pipeline is off: %s)", reason)
        return False
    maestro_graph.wrap_cycle(graph_class, _cycle, MARK)
    return True


def conductor_sleep(seconds: float) -> None:
    """Maestro's sleep between cycles, ended by the study this process conducts as
    soon as it changes (wake.py); a plain sleep before its first cycle."""
    study = STUDIES.conducting
    if study is None:
        time.sleep(seconds)
    else:
        study.wake.sleep(seconds)


class WhenGraphImported(importlib.abc.MetaPathFinder):
    """Installs the pipeline as soon as executiongraph.py has been imported.

    Maestro imports its adapters (and so registers ours) from inside the import of
    executiongraph.py, before ExecutionGraph exists (or before that import has even
    begun, when maestrowf.interfaces is imported first), and the conductor's first
    cycle, which submits every root step, starts before any adapter is built. So
    registration leaves this finder at the head of ``sys.meta_path``: at the next
    import of any new module, which comes long before the first cycle, it installs
    the pipeline. It finds no module itself, and does nothing once it has run.
    """

    def __init__(self) -> None:
        self.done = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if not self.done and maestro_graph.graph_class() is not None:
            self.done = True
            install()
        return None


def install_when_ready() -> None:
    """Install the pipeline now if ExecutionGraph exists, else once it does."""
    # Not imported yet, or mid-import: importing it here could be circular (Maestro
    # may be importing its adapters, ours included, on the way to importing it).
    if maestro_graph.graph_class() is not None:
        install()
    elif not any(isinstance(f, WhenGraphImported) for f in sys.meta_path):
        sys.meta_path.insert(0, WhenGraphImported())
