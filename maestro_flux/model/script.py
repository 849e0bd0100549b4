"""The step script as it lands in the workspace: ``#!``, the effective
``#flux:`` directives, a few comments saying what was decided, then the
command, or the user's rendered template with its own directives shown as
comments (they are merged into the effective directives above them)."""

from __future__ import annotations

import re

from maestro_flux import __version__
from maestro_flux.model.request import JobRequest, flux_header

#: The RFC 36 sentinel, matched as flux.job.directives matches it.
DIRECTIVE = re.compile(r"^([^\w]*)((?:flux|FLUX):)(.*)$")


def _mode(request: JobRequest) -> str:
    if request.resources.nested:
        return "its own Flux instance (like flux batch)"
    return "a plain Flux job (no nested instance)"


def _split_shebang(text: str, shell: str) -> tuple[str, list[str]]:
    lines = text.splitlines()
    if lines and lines[0].startswith("#!"):
        return lines[0], lines[1:]
    return f"#!{shell}", lines


def interpreter(script_text: str, default: str) -> list[str]:
    """The ``#!`` interpreter and its arguments, which run a script as a plain job."""
    first = script_text.split("\n", 1)[0]
    words = first[2:].split() if first.startswith("#!") else []
    return words or [default]


def _quiet_directives(lines: list[str]) -> list[str]:
    """Template directives as plain comments: the header above already holds them."""
    return [f"# from template: {m.group(3).strip()}" if (m := DIRECTIVE.match(line)) else line
            for line in lines]


def render_script(shell: str, request: JobRequest | None, command: str, broker: str,
                  problem: str | None = None, template: tuple[str, str] | None = None) -> str:
    """The full text of a step script.

    Args:
        shell: interpreter for the ``#!`` line when there is no template shebang.
        request: the job request, or None when the step cannot be submitted.
        command: the step command, $(LAUNCHER) already substituted.
        broker: a description of the broker the step goes to.
        problem: why the step cannot be submitted, written into the script.
        template: (path, rendered text) when the step uses a template.
    """
    shebang, body = _split_shebang(template[1] if template else "", shell)
    lines = [shebang]
    if request is not None:
        lines += flux_header(request)
        lines.append(f"# maestro-flux {__version__}: runs as {_mode(request)}, "
                     f"urgency {request.resources.urgency}")
        lines += [f"# maestro-flux: {note}" for note in request.notes]
    if problem:
        lines.append(f"# maestro-flux: this step cannot be submitted: {problem}")
    lines.append(f"# broker: {broker}")
    if template:
        lines.append(f"# template: {template[0]}")
        return "\n".join(lines + _quiet_directives(body)).rstrip("\n") + "\n"
    return "\n".join(lines) + "\n\n" + command.rstrip("\n") + "\n"
