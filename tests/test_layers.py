"""One door to Flux: only broker/bindings.py imports the Flux Python bindings.

import-linter (setup.cfg) checks import statements; it cannot see imports made
through importlib, which is how the bindings are loaded. This test reads every
module of the package and fails, naming the file and line, on an import of
``flux`` by statement or by ``importlib.import_module``, ``__import__``,
``importlib.util.find_spec``/``spec_from_file_location`` or ``import_maestro``,
and on such a call whose module name it cannot read (a name built at run time
could be anything). The other modules reach Flux through bindings.py's
``bindings()``, ``submodule()`` and ``source_module()``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "maestro_flux"
#: The door itself, and the wrapper whose callers name maestrowf modules (checked).
EXEMPT = {"broker/bindings.py", "maestro/maestro_imports.py"}
#: Calls that import (or locate) a module named by their first argument.
IMPORTERS = {"import_module", "__import__", "find_spec", "spec_from_file_location",
             "import_maestro"}


def _names_flux(name: str) -> bool:
    return name == "flux" or name.startswith("flux.")


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments (a call may name its module so)."""
    found = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            found.update({t.id: node.value.value for t in node.targets
                          if isinstance(t, ast.Name)})
    return found


def _called(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _module_named(node: ast.Call, constants: dict[str, str]) -> str | None:
    """The module name a dynamic import call passes, if it is readable here."""
    if not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return constants.get(arg.id) if isinstance(arg, ast.Name) else None


def flux_imports(source: str, where: str) -> list[str]:
    """Every import of the bindings in ``source``, or dynamic import it cannot read."""
    tree = ast.parse(source)
    constants, found = _constants(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and _called(node) in IMPORTERS:
            name = _module_named(node, constants)
            if name is None:
                found.append(f"{where}:{node.lineno}: {_called(node)}() of a module name "
                             "built at run time")
                continue
            names = [name]
        else:
            continue
        found += [f"{where}:{node.lineno}: imports {name}" for name in names
                  if _names_flux(name)]
    return found


def test_only_broker_bindings_imports_flux():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where not in EXEMPT:
            found += flux_imports(path.read_text(encoding="utf-8"), where)
    assert found == [], "outside broker/bindings.py:\n" + "\n".join(found)


def test_the_door_is_where_the_bindings_are_imported():
    source = (PACKAGE / "broker" / "bindings.py").read_text(encoding="utf-8")
    assert flux_imports(source, "broker/bindings.py")  # it does import them


@pytest.mark.parametrize("source, found", [
    ("import flux", ["m.py:1: imports flux"]),
    ("import flux.job as j", ["m.py:1: imports flux.job"]),
    ("from flux.job import JobID", ["m.py:1: imports flux.job"]),
    ("import importlib\nimportlib.import_module('flux.job')", ["m.py:2: imports flux.job"]),
    ("__import__('flux')", ["m.py:1: imports flux"]),
    ("importlib.util.find_spec('flux')", ["m.py:1: imports flux"]),
    ("NAME = 'flux'\nimport_module(NAME)", ["m.py:2: imports flux"]),
    ("importlib.import_module(root + '.util')",
     ["m.py:1: import_module() of a module name built at run time"]),
    ("from fluxion import x\nimport fluxdouble\nimport_maestro('maestrowf.maestro')", []),
    ("from . import flux", []),  # a module of our own package
])
def test_the_scan_finds_every_form(source, found):
    assert flux_imports(source, "m.py") == found


def test_the_maestro_wrapper_is_called_with_maestro_modules_only():
    """maestro_imports.import_maestro is exempt from the scan: its callers are checked."""
    named = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        named += [_module_named(n, constants) for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and _called(n) == "import_maestro"]
    assert named and all(name and name.startswith("maestrowf.") for name in named), named


#: The longest a function of the package may be, and Maestro's face (the adapter).
MAX_FUNCTION_LINES = 40
MAX_ADAPTER_LINES = 250


def long_functions(source: str, where: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    tree = ast.parse(source)
    return [f"{where}:{node.lineno}: {node.name} has {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_of_the_package_is_over_forty_lines():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += long_functions(path.read_text(encoding="utf-8"),
                                path.relative_to(PACKAGE).as_posix())
    assert found == [], "\n".join(found)


def test_the_function_length_scan_counts_whole_definitions():
    body = "\n".join(f"    x{n} = {n}" for n in range(40))
    assert long_functions(f"def f():\n{body}\n", "m.py") == ["m.py:1: f has 41 lines"]
    assert long_functions("def g():\n    return 1\n", "m.py") == []


def test_the_adapter_stays_maestros_thin_face():
    lines = (PACKAGE / "maestro" / "adapter.py").read_text().count("\n")
    assert lines <= MAX_ADAPTER_LINES, f"maestro/adapter.py has {lines} lines"


def _reactor_calls(tree: ast.Module) -> list[int]:
    """Lines calling ``reactor_run``, ``reactor_start`` or ``then`` (a reactor callback)."""
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("reactor_run", "reactor_start", "then")]


def test_the_package_never_runs_the_handles_reactor():
    """The wait's journal is a stream on the conductor's one handle, and libflux drops
    a stream's responses that a reactor run reads (real 0.76 and 0.88): everything else
    on that handle reads its answers with get()."""
    found = [f"{path.relative_to(PACKAGE)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
             for line in _reactor_calls(ast.parse(path.read_text()))]
    assert found == []


def test_the_reactor_scan_finds_each_form():
    tree = ast.parse("h.reactor_run()\nf.then(cb)\nh.reactor_start()\nf.get()\n")
    assert _reactor_calls(tree) == [1, 2, 3]
