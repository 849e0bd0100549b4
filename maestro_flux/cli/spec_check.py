"""The one check of a study spec that every command makes before anything else
(``run``, ``run --dry``, ``render``, ``doctor``): the file, its YAML, its sections,
the batch block, each step's keys and the templates it names.

Every mistake is a SpecError whose message is one line that starts with the
spec's path (and the line, where YAML knows it) and names the key at fault.
Maestro's own validation runs last, with its logging silenced, so that what it
alone refuses is one line too.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from maestro_flux.maestro import template_files
from maestro_flux.maestro.maestro_imports import import_maestro
from maestro_flux.maestro.study_context import resolve_template
from maestro_flux.model.batch_options import BatchOptions, parse_batch_block
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.step_keys import step_options

#: The sections Maestro reads; the first three are needed.
SECTIONS = ("description", "batch", "study", "env", "global.parameters")
REQUIRED = {"description": "a mapping with name and description",
            "batch": "a mapping with type: flux", "study": "a list of steps"}


class SpecError(MaestroFluxError):
    """The study spec cannot be run; the message names the file and the key or line."""


def _closest(word: str, choices: Any) -> str:
    # 0.45, not batch_options' 0.6: Maestro's run keys are words ('wallclock' -> 'walltime').
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.45)
    return f" (did you mean '{match[0]}'?)" if match else ""


def read_yaml(path: str) -> Any:
    """The spec's YAML document; a missing file or a parse error is one line."""
    if not os.path.isfile(path):
        raise SpecError(f"{path}: no such study specification")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as err:
        raise SpecError(f"{path}: cannot read it: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    except yaml.MarkedYAMLError as err:
        raise SpecError(_yaml_problem(err, path)) from None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"{path}: YAML does not parse: {first}") from None


def _yaml_problem(err: yaml.MarkedYAMLError, path: str) -> str:
    """``FILE:LINE: YAML does not parse: PROBLEM (CONTEXT on line N)``."""
    mark = err.problem_mark or err.context_mark
    where = f"{path}:{mark.line + 1}" if mark else path
    text = f"{where}: YAML does not parse: {err.problem or err.context or 'invalid YAML'}"
    if err.problem and err.context and err.context_mark and err.context_mark != mark:
        text += f" ({err.context} on line {err.context_mark.line + 1})"
    return text


def _check_sections(document: Any, path: str) -> None:
    if not isinstance(document, Mapping):
        raise SpecError(f"{path}: not a study specification: expected the sections "
                        f"{', '.join(REQUIRED)}, found {type(document).__name__}")
    for key in document:
        # Maestro ignores other sections (a home for YAML anchors, say): only one that
        # looks like a misspelt section is refused.
        near = _closest(str(key), SECTIONS) if key not in SECTIONS else ""
        if near:
            raise SpecError(f"{path}: unknown section '{key}'{near}")
    for key, what in REQUIRED.items():
        if key not in document:
            raise SpecError(f"{path}: section '{key}' is missing ({what})")
    description = document["description"]
    if not isinstance(description, Mapping):
        raise SpecError(f"{path}: description: must be {REQUIRED['description']}")
    for key in ("name", "description"):
        if not isinstance(description.get(key), str) or not description[key].strip():
            raise SpecError(f"{path}: description.{key}: missing or empty (text is needed)")


def check_batch(document: Mapping[str, Any], path: str) -> BatchOptions:
    """The batch block's options; it must select maestro-flux and be valid."""
    block = document.get("batch")
    if not isinstance(block, Mapping):
        raise SpecError(f"{path}: batch: must be {REQUIRED['batch']}")
    if block.get("type") != "flux":
        raise SpecError(f"{path}: batch.type is {block.get('type')!r}: set 'type: flux' to "
                        "submit with maestro-flux")
    try:
        return parse_batch_block(dict(block))
    except MaestroFluxError as err:
        raise SpecError(f"{path}: {err}") from None


@lru_cache(maxsize=1)
def run_keys() -> tuple[str, ...]:
    """The keys Maestro allows in a step's ``run`` block, from Maestro's own schema."""
    package = Path(import_maestro("maestrowf.specification").__file__).parent
    schema = json.loads((package / "schemas" / "yamlspecification.json").read_text())
    return tuple(schema["STUDY_STEP"]["properties"]["run"]["properties"])


def _check_step(step: Any, number: int, path: str) -> None:
    if not isinstance(step, Mapping):
        raise SpecError(f"{path}: study step {number}: must be a mapping with name, "
                        "description and run")
    name = step.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{path}: study step {number}: 'name' is missing or not text")
    where = f"{path}: study step '{name}'"
    for key in ("description", "run"):
        if key not in step:
            raise SpecError(f"{where}: '{key}' is missing")
    run = step["run"]
    if not isinstance(run, Mapping) or not isinstance(run.get("cmd"), str):
        raise SpecError(f"{where}: run: must be a mapping with a 'cmd' (text)")
    for key in run:
        if key not in run_keys():
            raise SpecError(f"{where}: run: unknown key '{key}'{_closest(str(key), run_keys())}")
    # Values that use a parameter are checked per step once Maestro has expanded them.
    fixed = {k: v for k, v in run.items() if not (isinstance(v, str) and "$(" in v)}
    try:
        step_options(fixed)
    except MaestroFluxError as err:
        raise SpecError(f"{where}: run: {err}") from None


def _check_steps(document: Mapping[str, Any], path: str) -> None:
    steps = document["study"]
    if not isinstance(steps, list) or not steps:
        raise SpecError(f"{path}: study: must be {REQUIRED['study']}, with at least one")
    for number, step in enumerate(steps, 1):
        _check_step(step, number, path)


def _check_templates(options: BatchOptions, path: str) -> None:
    """Every template the batch block names exists, and compiles."""
    named = [("batch.file", options.defaults.file)]
    named += [(f"batch.profiles.{name}.file", profile.file)
              for name, profile in options.profiles.items()]
    root = os.path.dirname(os.path.abspath(path))
    for where, file in named:
        if not file:
            continue
        try:
            template_files.load(resolve_template(file, root))
        except MaestroFluxError as err:
            raise SpecError(f"{path}: {where}: {err}") from None


@contextlib.contextmanager
def _maestro_quiet() -> Iterator[None]:
    """Maestro logs a traceback before raising; the one line we make of it is enough."""
    quiet = logging.getLogger("maestrowf")
    level, quiet.level = quiet.level, logging.CRITICAL + 1
    try:
        yield
    finally:
        quiet.level = level


def _maestro_spec(path: str) -> Any:
    YAMLSpecification = import_maestro("maestrowf.specification").YAMLSpecification
    try:
        with _maestro_quiet():
            return YAMLSpecification.load_specification(path)
    except Exception as err:  # Maestro raises many kinds; the message is what matters
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"{path}: Maestro rejects this spec: {first}") from None


def check_spec(path: str) -> Any:
    """Check the spec at ``path`` as every command does; returns Maestro's reading of it.

    Raises:
        SpecError: one line naming the file and the key or line at fault.
    """
    try:
        document = read_yaml(path)
        _check_sections(document, path)
        options = check_batch(document, path)
        _check_steps(document, path)
        _check_templates(options, path)
        return _maestro_spec(path)
    except SpecError as err:
        raise SpecError(printable(str(err))) from None


def printable(text: str) -> str:
    """The message on one line: a key or name holding a newline or another control
    character is shown escaped, as Python writes it."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
