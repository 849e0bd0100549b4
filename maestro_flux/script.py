"""The step script as it lands in the workspace: ``#!``, the effective
``#flux:`` directives, a few comments saying what was decided, then the command."""

from __future__ import annotations

from maestro_flux import __version__
from maestro_flux.request import JobRequest, flux_header


def _mode(request: JobRequest) -> str:
    if request.resources.nested:
        return "its own Flux instance (like flux batch)"
    return "a plain Flux job (no nested instance)"


def render_script(shell: str, request: JobRequest | None, command: str, broker: str,
                  problem: str | None = None) -> str:
    """The full text of a step script.

    Args:
        shell: interpreter for the ``#!`` line.
        request: the job request, or None when the step cannot be submitted.
        command: the step command, $(LAUNCHER) already substituted.
        broker: a description of the broker the step goes to.
        problem: why the step cannot be submitted, written into the script.
    """
    lines = [f"#!{shell}"]
    if request is not None:
        lines += flux_header(request)
        lines.append(f"# maestro-flux {__version__}: runs as {_mode(request)}, "
                     f"urgency {request.resources.urgency}")
    if problem:
        lines.append(f"# maestro-flux: this step cannot be submitted: {problem}")
    lines.append(f"# broker: {broker}")
    return "\n".join(lines) + "\n\n" + command.rstrip("\n") + "\n"
