"""One door to Maestro's internals: maestro_flux/maestro/graph.py, and
maestro_names.py the list of what it uses.

The list is checked against graph.py's own code (every name of Maestro's it uses
is listed, every listed name is used), every other module is checked not to use
them, and the installed Maestro is checked to have them all. When a Maestro upgrade
removes or renames one, the last fails and names it; the pipeline then turns itself
off (one submit per step) until maestro_names.py and TESTED_VERSIONS are updated.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from maestro_flux.maestro import gate, maestro_names

pytestmark = pytest.mark.unit
PACKAGE = Path(__file__).resolve().parent.parent / "maestro_flux"
DOOR = PACKAGE / "maestro" / "graph.py"
#: graph.py's variable names for Maestro's objects, and the class each stands for.
ROOTS = {"graph": "ExecutionGraph", "dag": "ExecutionGraph", "graph_class": "ExecutionGraph",
         "record": "_StepRecord", "step": "StudyStep", "study": "Study",
         "conductor": "Conductor", "spec": "YAMLSpecification"}
#: graph.py's helpers that return a Maestro class or module: helper() -> class.
HELPERS = {"_conductor": "Conductor", "_enums": None}
#: Modules whose import is the door's alone.
INTERNAL_MODULES = ("maestrowf.datastructures", "maestrowf.conductor")


def _class_of(node: ast.expr) -> str | None:
    """The Maestro class an attribute access is made on, where graph.py's naming says."""
    if isinstance(node, ast.Name):
        return ROOTS.get(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return HELPERS.get(node.func.id)
    if (isinstance(node, ast.Attribute) and node.attr == "State"
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "_enums"):
        return "State"
    return None


def used_by(source: str) -> set[tuple[str, str]]:
    """(class, name) for every attribute of a Maestro object the source uses."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            owner = _class_of(node.value)
            if owner:
                found.add((owner, node.attr))
    return found


def functions_used_by(source: str) -> set[str]:
    """Module functions of Maestro's called on ``import_maestro(...)`` in the source."""
    return {node.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "import_maestro"
            and node.attr[0].islower()}


LISTED = {(cls, name) for (_, cls), names in maestro_names.NAMES.items() for name in names}


def test_the_list_is_exactly_what_the_door_uses():
    used = used_by(DOOR.read_text())
    assert used - LISTED == set(), "graph.py uses names maestro_names.py does not list"
    assert LISTED - used == set(), "maestro_names.py lists names graph.py no longer uses"
    functions = {n for names in maestro_names.FUNCTIONS.values() for n in names}
    assert functions_used_by(DOOR.read_text()) == functions


def _outside_uses(source: str, where: str) -> list[str]:
    private = {name for _, name in LISTED if name.startswith("_")}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append(f"{where}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in ("graph", "record", "dag", "conductor") and \
                (ROOTS[node.value.id], node.attr) in LISTED:
            found.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                node.func, "attr", "")) in ("import_maestro", "import_module") and node.args \
                and isinstance(node.args[0], ast.Constant) \
                and str(node.args[0].value).startswith(INTERNAL_MODULES):
            found.append(f"{where}:{node.lineno}: imports {node.args[0].value}")
    return found


def test_nothing_else_touches_maestros_internals():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if path != DOOR and where != "maestro/maestro_names.py":
            found += _outside_uses(path.read_text(encoding="utf-8"), where)
    assert found == [], "outside maestro/graph.py:\n" + "\n".join(found)


@pytest.mark.parametrize("source, found", [
    ("graph.in_progress.add(x)", ["m.py:1: graph.in_progress"]),
    ("x = record._num_restarts", ["m.py:1: ._num_restarts"]),
    ("thing._tmp_dir", ["m.py:1: ._tmp_dir"]),
    ("import_maestro('maestrowf.conductor')", ["m.py:1: imports maestrowf.conductor"]),
    ("logging.getLogger('maestrowf.conductor')", []),
    ("graph_door.snapshot(graph)", []),
    ("study.notices", []),  # our StudyState, not Maestro's Study
])
def test_the_scan_finds_each_kind_of_use(source, found):
    assert _outside_uses(source, "m.py") == found


def test_every_maestro_name_the_door_uses_exists():
    assert maestro_names.missing() == []


def test_the_installed_maestro_is_one_the_pipeline_was_tested_with():
    assert maestro_names.maestro_version() in maestro_names.TESTED_VERSIONS


def test_a_missing_name_turns_the_pipeline_off_and_is_named(monkeypatch):
    monkeypatch.delenv(gate.SWITCH, raising=False)
    key = (maestro_names.GRAPH_MODULE, "ExecutionGraph")
    monkeypatch.setitem(maestro_names.NAMES, key,
                        (*maestro_names.NAMES[key], "_gone_in_a_later_maestro"))
    assert maestro_names.missing() == ["ExecutionGraph._gone_in_a_later_maestro"]
    assert gate.why_off() == "this Maestro lacks ExecutionGraph._gone_in_a_later_maestro"
