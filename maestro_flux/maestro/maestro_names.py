"""Every name of Maestro's that maestro-flux relies on beyond the adapter API.

graph.py is the one door to Maestro's internals, and this is the list of what it
uses there: tests/test_maestro_names.py reads graph.py and fails if it uses a name
this list lacks (or this list names one it no longer uses), and fails on any use of
them outside graph.py. :func:`missing` says which of them a given Maestro lacks, so
an upgrade that renames one turns the pipeline off (gate.py, with a log line naming
it) instead of breaking the conductor.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import logging
import re
import sys
from collections.abc import Iterator

from maestro_flux.maestro.maestro_imports import import_maestro

#: maestrowf releases the suite has run the pipeline against; any other runs one
#: submit per step, Maestro's own loop untouched.
TESTED_VERSIONS = ("1.2.0", "1.2.1")

GRAPH_MODULE = "maestrowf.datastructures.core.executiongraph"
STUDY_MODULE = "maestrowf.datastructures.core.study"
CONDUCTOR_MODULE = "maestrowf.conductor"
SPECIFICATION_MODULE = "maestrowf.specification"

#: (module, class) -> the names graph.py uses on it. A leading underscore marks
#: Maestro's private names.
NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    (GRAPH_MODULE, "ExecutionGraph"): (
        "_adapter", "_check_study_completion", "_dependencies", "_submission_throttle",
        "_tmp_dir", "adjacency_table", "bfs_subtree", "cancelled_steps", "completed_steps",
        "dry_run", "execute_ready_steps", "failed_steps", "in_progress", "is_canceled",
        "name", "pickle", "ready_steps", "set_adapter", "topological_sort", "update_rlimit",
        "update_throttle", "values", "write_status"),
    (GRAPH_MODULE, "_StepRecord"): (
        "_end_time", "_num_restarts", "_start_time", "_submit_time", "generate_script",
        "jobid", "mark_end", "mark_submitted", "name", "params", "restarts", "script",
        "setup_workspace", "status", "step", "workspace"),
    (STUDY_MODULE, "StudyStep"): ("name", "real_name", "run"),
    (STUDY_MODULE, "Study"): (
        "configure_study", "name", "setup_environment", "setup_workspace", "stage",
        "store_metadata"),
    (CONDUCTOR_MODULE, "Conductor"): (
        "_cancel_lock", "_exec_dag", "_pkl_path", "_setup", "_study_update", "cleanup",
        "load_batch", "load_study", "monitor_study", "sleep_time", "store_batch"),
    (SPECIFICATION_MODULE, "YAMLSpecification"): (
        "batch", "description", "get_parameters", "get_study_environment",
        "get_study_steps", "name"),
    ("maestrowf.abstracts.enums", "State"): ("CANCELLED", "FAILED", "INITIALIZED"),
}
#: Module-level functions graph.py calls.
FUNCTIONS: dict[str, tuple[str, ...]] = {CONDUCTOR_MODULE: ("setup_logging", "sleep")}
ENUMS_MODULE = "maestrowf.abstracts.enums"
#: Each module above, imported by a name tests/test_layers.py can read.
IMPORTS = {
    GRAPH_MODULE: lambda: import_maestro(GRAPH_MODULE),
    STUDY_MODULE: lambda: import_maestro(STUDY_MODULE),
    CONDUCTOR_MODULE: lambda: import_maestro(CONDUCTOR_MODULE),
    SPECIFICATION_MODULE: lambda: import_maestro(SPECIFICATION_MODULE),
    ENUMS_MODULE: lambda: import_maestro(ENUMS_MODULE),
}


def maestro_version() -> str:
    return importlib.metadata.version("maestrowf")


def _defines(cls: type, name: str) -> bool:
    """A class attribute (method, property, member), or one the methods of the class
    (or of a base class) use on ``self``."""
    if hasattr(cls, name):
        return True
    pattern = re.compile(rf"\bself\.{re.escape(name)}\b")
    for base in cls.__mro__:
        try:
            if pattern.search(inspect.getsource(base)):
                return True
        except (OSError, TypeError):
            continue
    return False


#: Modules that import maestrowf.datastructures.core's package: while that package is
#: still being imported (registration installs the pipeline from inside that import),
#: importing them would be circular, so they are checked in processes that use them
#: (resume, retry, render: all import them first).
LATE = frozenset((CONDUCTOR_MODULE, SPECIFICATION_MODULE))
CORE_PACKAGE = "maestrowf.datastructures.core"


def _importable_now(module_name: str) -> bool:
    core = sys.modules.get(CORE_PACKAGE)
    return module_name not in LATE or core is None or hasattr(core, "StudyEnvironment")


def missing() -> list[str]:
    """The listed names this Maestro lacks, as ``Class.name``."""
    lacking = []
    with _quiet("maestrowf"):
        for (module_name, class_name), names in NAMES.items():
            if not _importable_now(module_name):
                continue
            cls = getattr(IMPORTS[module_name](), class_name, None)
            if cls is None:
                lacking.append(f"{module_name}.{class_name}")
                continue
            lacking += [f"{class_name}.{name}" for name in names if not _defines(cls, name)]
        for module_name, names in FUNCTIONS.items():
            if not _importable_now(module_name):
                continue
            module = IMPORTS[module_name]()
            lacking += [f"{module_name}.{name}" for name in names if not hasattr(module, name)]
    return lacking


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before
