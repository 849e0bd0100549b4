"""``#flux:`` directives read by flux-python's own RFC 36 parser."""

from __future__ import annotations

import io
from functools import lru_cache
from types import ModuleType

from maestro_flux.broker import bindings
from maestro_flux.model.errors import BindingsMissing, TemplateError


@lru_cache(maxsize=1)
def _directive_module() -> ModuleType:
    """flux-python's RFC 36 directive parser, loaded from its file alone.

    ``flux/job/directives.py`` is plain Python; importing it through the
    ``flux`` package would load libflux-core, which directive reading must not
    need (``maestro-flux render`` works without a broker install).
    """
    module = bindings.source_module("job/directives.py", "maestro_flux._flux_directives")
    if module is None:
        # Only the parser's file is read: any flux-python will do, without flux-core.
        raise BindingsMissing("reading a template's #flux: lines uses flux-python's parser: "
                              "pip install flux-python ply (any version; no flux-core is "
                              "needed for this)")
    return module


def parse_directives(script_text: str) -> list[tuple[int, list[str]]]:
    """``(line, arguments)`` of each ``#flux:`` directive, parsed as ``flux batch`` does.

    Raises:
        ValueError: the directive parser's own message (with its line).
        BindingsMissing: flux-python is not installed.
    """
    parser = _directive_module().DirectiveParser(io.StringIO(script_text))
    return [(d.lineno, list(d.args)) for d in parser.directives if d.action == "SETARGS"]


def template_directives(script_text: str, source: str) -> list[tuple[int, list[str]]]:
    """``parse_directives`` of a rendered template; a parse error names the template.

    Raises:
        TemplateError: the parser's message, with the template's path.
    """
    try:
        return parse_directives(script_text)
    except ValueError as err:
        raise TemplateError(f"template {source}: {err}") from None
