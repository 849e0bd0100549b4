"""User templates of the step script: Jinja2, sandboxed, with StrictUndefined.

A template is read once per file version (path and mtime), checked for syntax
and for ``{{ maestro_command }}``, and rendered per step. Every problem is a
TemplateError whose message names the file, and the line where Jinja2 knows it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from maestro_flux.model.errors import TemplateError

LOGGER = logging.getLogger(__name__)
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


def _warn_no_colon(path: str, source: str) -> None:
    # Called when a template is compiled, which _compiled's cache makes once per
    # version of the file: the warning shows once, and again if the file changes.
    for number, line in enumerate(source.splitlines(), 1):
        if _NO_COLON.match(line):
            LOGGER.warning("maestro-flux: %s line %d: '%s' has no colon, so Flux treats it as a "
                     "comment; write '#flux: %s'", path, number, line.strip(),
                     line.strip().lstrip("#").strip()[4:].strip())


@lru_cache(maxsize=64)
def _compiled(path: str, mtime: float) -> jinja2.Template:
    try:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
    except OSError as err:
        raise TemplateError(f"template {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"template {path}: not UTF-8 text") from None
    try:
        parsed = _ENV.parse(source)
        # Compiling also checks names that parsing leaves alone (filters, tests).
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as err:  # TemplateAssertionError included
        raise TemplateError(f"template {path} line {err.lineno}: {err.message}") from None
    if COMMAND_VARIABLE not in meta.find_undeclared_variables(parsed):
        raise TemplateError(f"template {path} never uses {{{{ {COMMAND_VARIABLE} }}}}, so the "
                            "step command would not run; add it where the command belongs")
    _warn_no_colon(path, source)
    return template


def load(path: str) -> jinja2.Template:
    """The compiled template at ``path`` (an absolute path), re-read when it changes."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError as err:
        raise TemplateError(f"template {path}: {err.strerror or err}") from None
    return _compiled(path, mtime)


def render(path: str, context: Mapping[str, Any]) -> str:
    """Render the template at ``path`` for one step.

    Raises:
        TemplateError: naming the file and the undefined variable or failing line.
    """
    template = load(path)
    try:
        return template.render(**context)
    except jinja2.UndefinedError as err:
        raise TemplateError(f"template {path}: undefined variable ({err.message}); "
                            f"available: {', '.join(sorted(context))}") from None
    except jinja2.exceptions.SecurityError as err:
        raise TemplateError(f"template {path}: refused by the sandbox: {err}") from None
    except jinja2.TemplateError as err:
        raise TemplateError(f"template {path}: {err}") from None
    except Exception as err:  # a filter or test raised; still one line
        raise TemplateError(f"template {path}: {type(err).__name__}: {err}") from None
