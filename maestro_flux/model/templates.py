"""User templates of the step script: Jinja2, sandboxed, with StrictUndefined.

A template's text is compiled (:func:`compile_source`), checked for syntax and for
``{{ maestro_command }}``, and rendered per step (:func:`render`). Every problem is
a TemplateError whose message names the file, and the line where Jinja2 knows it.
This module reads no file and logs nothing: maestro/template_files.py reads the
file (once per version of it) and logs the warnings compiling returns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from maestro_flux.model.errors import TemplateError

COMMAND_VARIABLE = "maestro_command"

#: Variables every template gets (documented in docs/pages/reference.md).
VARIABLES = {
    "maestro_command": "the step command, $(LAUNCHER) already replaced by flux run",
    "step_name": "the step's name, parameter labels included",
    "workspace": "the step's workspace directory",
    "params": "the step's Maestro parameters, name -> value ({} when none)",
    "profile": "the name of the profile chosen for the step, or 'batch'",
    "nodes": "Maestro's nodes key (None when unset)",
    "procs": "Maestro's procs key (None when unset)",
    "cores_per_task": "Maestro's 'cores per task' key (None when unset)",
    "gpus": "Maestro's gpus key (None when unset)",
    "walltime": "Maestro's walltime key, as written (None when unset)",
    "priority": "Maestro's priority key, as written (None when unset)",
    "flux_uri": "the URI the step is submitted to (None: Flux's default)",
}

#: ``#flux --nodes=1`` (no colon) is a plain comment to Flux: RFC 36 wants ``#flux:``.
_NO_COLON = re.compile(r"^\s*#\s*flux\s+-", re.IGNORECASE)

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                            autoescape=False)


def no_colon_warnings(path: str, source: str) -> list[str]:
    """A warning for each ``#flux -X`` line, which Flux treats as a comment."""
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        if _NO_COLON.match(line):
            text = line.strip()
            found.append(f"maestro-flux: {path} line {number}: '{text}' has no colon, so Flux "
                         f"treats it as a comment; write '#flux: "
                         f"{text.lstrip('#').strip()[4:].strip()}'")
    return found


@dataclass(frozen=True)
class Compiled:
    """A template compiled from its text, and what the user should be warned of."""

    path: str
    template: jinja2.Template
    warnings: tuple[str, ...] = ()


def compile_source(path: str, source: str) -> Compiled:
    """Compile a template's text (``path`` names it in messages); TemplateError names
    the file and line of a syntax error, or says the command variable is missing."""
    try:
        parsed = _ENV.parse(source)
        # Compiling also checks names that parsing leaves alone (filters, tests).
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as err:  # TemplateAssertionError included
        raise TemplateError(f"template {path} line {err.lineno}: {err.message}") from None
    if COMMAND_VARIABLE not in meta.find_undeclared_variables(parsed):
        raise TemplateError(f"template {path} never uses {{{{ {COMMAND_VARIABLE} }}}}, so the "
                            "step command would not run; add it where the command belongs")
    return Compiled(path, template, tuple(no_colon_warnings(path, source)))


def render(compiled: Compiled, context: Mapping[str, Any]) -> str:
    """Render a compiled template for one step.

    Raises:
        TemplateError: naming the file and the undefined variable or failing line.
    """
    path = compiled.path
    try:
        return compiled.template.render(**context)
    except jinja2.UndefinedError as err:
        raise TemplateError(f"template {path}: undefined variable ({err.message}); "
                            f"available: {', '.join(sorted(context))}") from None
    except jinja2.exceptions.SecurityError as err:
        raise TemplateError(f"template {path}: refused by the sandbox: {err}") from None
    except jinja2.TemplateError as err:
        raise TemplateError(f"template {path}: {err}") from None
    except Exception as err:  # a filter or test raised; still one line
        raise TemplateError(f"template {path}: {type(err).__name__}: {err}") from None
