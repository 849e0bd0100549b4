"""MkDocs hook: tables generated from the code, so the reference cannot drift.

A page asks for a table with a marker on a line of its own::

    <!-- generated: batch-keys -->

The tables come from ``maestro_flux/model/schema/batch.schema.json`` (read as JSON)
and from module-level constants of a few modules, read with ``ast`` (nothing of
maestro_flux, maestrowf or flux is imported, so the docs build needs only
MkDocs). An unknown marker, or a constant that cannot be read, fails the build.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "maestro_flux"
SCHEMA = PACKAGE / "model" / "schema" / "batch.schema.json"
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


class GeneratedTableError(Exception):
    """A marker names no table, or the code no longer has what a table reads."""


# -- reading the sources -------------------------------------------------------
def _schema() -> dict:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def _resolve(schema: dict, node: dict) -> dict:
    """Follow a local ``$ref`` (``#/$defs/...``), keeping the referring node's keys."""
    if "$ref" not in node:
        return node
    target: dict = schema
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve(schema, target), **{k: v for k, v in node.items() if k != "$ref"}}


def _constants(module: str) -> dict[str, object]:
    """Module-level ``NAME = <literal>`` assignments of ``maestro_flux/<module>.py``.

    Names bound earlier in the module may be used; ``Enum.MEMBER`` reads as ``MEMBER``.
    """
    path = PACKAGE / f"{module}.py" if "/" in module else PACKAGE / "model" / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, object] = {}

    def value(node: ast.AST) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id in found:
            return found[node.id]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return node.attr
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, ast.Tuple):
            return tuple(elements(node.elts))  # hashable: tuples key dicts
        if isinstance(node, ast.List):
            return list(elements(node.elts))
        raise ValueError(ast.dump(node))

    def elements(nodes: list[ast.expr]) -> list[object]:
        items: list[object] = []
        for item in nodes:
            if isinstance(item, ast.Starred):
                items.extend(value(item.value))  # (*SECRETS, ...)
            else:
                items.append(value(item))
        return items

    for statement in tree.body:
        if isinstance(statement, ast.AnnAssign):
            targets, node = [statement.target], statement.value
        elif isinstance(statement, ast.Assign):
            targets, node = statement.targets, statement.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and node is not None:
                try:
                    found[target.id] = value(node)
                except ValueError:
                    pass  # not a literal; no table reads it
    return found


def _constant(module: str, name: str) -> object:
    constants = _constants(module)
    if name not in constants:
        raise GeneratedTableError(f"maestro_flux/{module}.py has no literal {name}")
    return constants[name]


# -- formatting ------------------------------------------------------------------
def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: object) -> str:
    return f"`{text}`"


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _type_of(node: dict) -> str:
    """A short YAML-facing type: ``integer >= 1``, ``string or list``, ..."""
    if "oneOf" in node:
        kinds = []
        for choice in node["oneOf"]:
            kind = {"object": "mapping", "array": "list"}.get(choice["type"], choice["type"])
            kinds.append(kind)
        return " or ".join(kinds)
    if "const" in node:
        return _code(node["const"])
    kind = node.get("type", "mapping" if "properties" in node else "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    kind = {"object": "mapping", "array": "list of strings"}.get(kind, kind)
    if "minimum" in node and "maximum" in node:
        kind += f" {node['minimum']}-{node['maximum']}"
    elif "minimum" in node:
        kind += f" >= {node['minimum']}"
    elif "exclusiveMinimum" in node:
        kind += f" > {node['exclusiveMinimum']}"
    return kind


def _merge_kind(node: dict) -> str:
    """How layers combine this option (flux_options.py's kinds, told by the schema)."""
    if "oneOf" in node:
        types = {choice["type"] for choice in node["oneOf"]}
        return "mapping" if "object" in types else "list"
    kind = node.get("type")
    return {"integer": "count", "boolean": "flag"}.get(kind, "scalar") if isinstance(
        kind, str) else "scalar"


# -- the tables ------------------------------------------------------------------
def _option_names(schema: dict) -> list[str]:
    return list(schema["$defs"]["options"]["properties"])


def batch_keys() -> str:
    """Keys of the batch block that are not flux batch options."""
    schema = _schema()
    options = set(_option_names(schema))
    required = set(schema.get("required", []))
    rows = []
    for name, node in schema["properties"].items():
        if name in options:
            continue
        node = _resolve(schema, node)
        meaning = node.get("description", "")
        if name in required:
            meaning = f"**Required.** {meaning}"
        rows.append([_code(name), _type_of(node), meaning])
    return _table(["key", "type", "meaning"], rows)


def flux_options() -> str:
    """The flux batch options, accepted in the batch block and in every profile."""
    schema = _schema()
    rows = []
    for name in _option_names(schema):
        node = schema["$defs"]["options"]["properties"][name]
        rows.append([_code(name), _merge_kind(node), _type_of(node), node.get("description", "")])
    return _table(["option", "kind", "type", "meaning"], rows)


def profile_keys() -> str:
    """Keys of one profile that are not flux batch options."""
    schema = _schema()
    options = set(_option_names(schema))
    profile = schema["$defs"]["profile"]["properties"]
    rows = [[_code(name), _type_of(node), node.get("description", "")]
            for name, node in profile.items() if name not in options]
    missing = options - set(profile)
    rows.append(["every flux batch option", "", "as in the batch block" + (
        f" (except {', '.join(sorted(missing))})" if missing else "")])
    return _table(["key", "type", "meaning"], rows)


def args_keys() -> str:
    """Keys of allocation_args and launcher_args."""
    schema = _schema()
    args = schema["$defs"]["args"]["properties"]
    flags = {"setattr": "-S / --setattr", "setopt": "-o / --setopt", "conf": "--conf",
             "S": "-S / --setattr", "o": "-o / --setopt", "x": "-x / --exclusive",
             "exclusive": "-x / --exclusive"}
    rows = [[_code(name), "mapping" if "$ref" in spec else "flag", flags.get(name, "")]
            for name, spec in args.items()]
    return _table(["key", "type", "flux flag"], rows)


def template_variables() -> str:
    variables = _constant("templates", "VARIABLES")
    return _table(["variable", "value"], [[_code(k), v] for k, v in variables.items()])


def states() -> str:
    active = _constant("states", "ACTIVE_STATE_MAP")
    results = _constant("states", "RESULT_MAP")
    rows = [[_code(flux), "", _code(maestro)] for flux, maestro in active.items()]
    rows += [[_code("INACTIVE"), _code(result), _code(maestro)]
             for result, maestro in results.items()]
    return _table(["Flux state", "result", "Maestro state"], rows)


def exception_reasons() -> str:
    reasons = _constant("states", "REASONS")
    return _table(["exception type", "logged as"], [[_code(k), v] for k, v in reasons.items()])


def env_deny() -> str:
    deny = _constant("environment", "DEFAULT_DENY")
    return " ".join(_code(pattern) for pattern in deny)


def priorities() -> str:
    urgency = _constant("urgency", "PRIORITY_URGENCY")
    return _table(["priority", "Flux urgency"], [[_code(k), v] for k, v in urgency.items()])


def step_key_options() -> str:
    keys = _constant("step_keys", "STEP_KEYS")
    return _table(["Maestro step key", "flux batch option"],
                  [[_code(k), _code(v)] for k, v in keys.items()])


def maestro_versions() -> str:
    versions = _constant("maestro/maestro_names", "TESTED_VERSIONS")
    return ", ".join(f"maestrowf {_code(version)}" for version in versions) + "."


TABLES = {
    "batch-keys": batch_keys,
    "flux-options": flux_options,
    "profile-keys": profile_keys,
    "args-keys": args_keys,
    "template-variables": template_variables,
    "states": states,
    "exception-reasons": exception_reasons,
    "env-deny": env_deny,
    "priorities": priorities,
    "step-key-options": step_key_options,
    "maestro-versions": maestro_versions,
}


def expand(markdown: str, where: str = "page") -> str:
    """Replace every marker in ``markdown`` with its table."""
    def table(match: re.Match) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise GeneratedTableError(f"{where}: unknown table '{name}'; "
                                      f"known: {', '.join(TABLES)}")
        return TABLES[name]()

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return expand(markdown, page.file.src_path)
