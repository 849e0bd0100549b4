"""``maestro-flux run``: run a study on the reachable broker, or inside a private
Flux instance started for it, and exit with the study's status."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from maestro_flux import flux_api
from maestro_flux.errors import MaestroFluxError

NO_FLUX = ("flux-core is not installed here (no 'flux' on PATH), so no broker can be "
           "started: install flux-core (your site's module, spack install flux-core, or "
           "a source build) and matching flux-python bindings, or add --dry to write the "
           "scripts without submitting")


def _say(message: str) -> None:
    print(f"maestro-flux: {message}", file=sys.stderr, flush=True)


def _maestro(spec: str, extra: list[str], dry: bool) -> list[str]:
    extra = [arg for arg in extra if arg != "--"]
    mode = ["--dry", "-fg"] if dry else ["-fg"]
    return [sys.executable, "-m", "maestrowf.maestro", "run", *mode, "-y", *extra, spec]


def _reachable_broker() -> str | None:
    """A description of the broker already reachable from here, if any."""
    uri = os.environ.get("FLUX_URI")
    try:
        flux_api.connect(uri)
    except (OSError, MaestroFluxError):
        return None
    return uri or "the system instance"


def run_study(spec: str, size: int = 1, dry: bool = False,
              maestro_args: list[str] | None = None) -> int:
    """Run ``maestro run`` where it can reach a broker; return the study's status."""
    command = _maestro(spec, maestro_args or [], dry)
    if dry:
        _say("dry run: writing every step's script, submitting nothing")
        return subprocess.call(command)
    broker = _reachable_broker()
    if broker:
        _say(f"submitting to the running broker at {broker}")
        return subprocess.call(command)
    if shutil.which("flux") is None:
        _say(NO_FLUX)
        return 2
    flux_api.bindings()  # fail with install advice before starting anything
    _say(f"starting a private Flux instance of {size} broker(s): flux start --test-size={size}")
    status = subprocess.call(["flux", "start", f"--test-size={size}", *command])
    _say(f"private instance shut down; study exit status {status}")
    return status
