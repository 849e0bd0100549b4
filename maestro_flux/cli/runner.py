"""``maestro-flux run``: run a study on the reachable broker, or inside a private
Flux instance started for it, and exit with the study's status."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from maestro_flux.broker import bindings
from maestro_flux.cli.spec_check import check_spec
from maestro_flux.model.errors import MaestroFluxError

#: What flux-core and flux-python are, and where to get them (said when flux is missing).
INSTALL_FLUX = ("install flux-core (your site's module, spack install flux-core, or a source "
                "build) and flux-python of the same version to run the study")
NO_FLUX = ("flux-core is not installed here (no 'flux' on PATH), so no broker can be "
           f"started: {INSTALL_FLUX}; --dry-without-flux (or --dry) writes every step's "
           "script without submitting")
DRY_INSTEAD = ("flux-core is not installed here (no 'flux' on PATH), so this is a DRY RUN: "
               "every step's script is written, nothing is submitted (" + INSTALL_FLUX + ")")
#: The line the adapter writes into the script of a step it refuses (model/script.py).
REFUSED = "# maestro-flux: this step cannot be submitted: "


POLL_SECONDS = 2


def _say(message: str) -> None:
    print(f"maestro-flux: {message}", file=sys.stderr, flush=True)


def _maestro(spec: str, extra: list[str], dry: bool) -> list[str]:
    extra = [arg for arg in extra if arg != "--"]
    # A dry run logs at WARNING: its summary is printed by _summarize_dry_run.
    quiet, mode = (["-d", "3"], ["--dry", "-fg"]) if dry else ([], ["-fg"])
    # Maestro polls every 60 s by default; a private or interactive instance wants 2 s.
    if not any(arg in ("-s", "--sleeptime") or arg.startswith("--sleeptime=") for arg in extra):
        extra = ["-s", str(POLL_SECONDS), *extra]
    return [sys.executable, "-m", "maestro_flux.cli.quiet_maestro", *quiet, "run", *mode, "-y",
            *extra, spec]


def _dry_run(spec: str, command: list[str]) -> int:
    started = time.time()
    status = subprocess.call(command)
    studies = [p for p in Path.cwd().glob("**/status.csv") if p.stat().st_mtime >= started]
    if status == 0 and studies:
        return _summarize_dry_run(spec, max(studies, key=lambda p: p.stat().st_mtime).parent)
    return status


def _summarize_dry_run(spec: str, study: Path) -> int:
    """Print every step's script; 1, with one line, if any step cannot be submitted."""
    scripts = sorted(study.glob("**/*.flux.sh"))
    print((study / "status.csv").read_text())
    refused = []
    for script in scripts:
        text = script.read_text()
        print(f"--- {script} ---\n{text}")
        refused += [line[len(REFUSED):] for line in text.splitlines() if line.startswith(REFUSED)]
    if refused:
        more = f" (and {len(refused) - 1} more step(s))" if len(refused) > 1 else ""
        _say(f"{spec}: {refused[0]}{more}")
        return 1
    _say(f"dry run complete: {len(scripts)} step script(s) written under {study}, nothing "
         f"submitted; 'maestro-flux render {spec}' shows each step's jobspec")
    return 0


def _reachable_broker() -> str | None:
    """A description of the broker already reachable from here, if any."""
    uri = os.environ.get("FLUX_URI") or None  # empty counts as unset
    try:
        bindings.connect(uri)
    except (OSError, MaestroFluxError):
        return None
    return uri or "the system instance"


def run_study(spec: str, size: int = 1, dry: bool = False,
              maestro_args: list[str] | None = None, dry_without_flux: bool = False,
              private: bool = False) -> int:
    """Run ``maestro run`` where it can reach a broker; return the study's status.

    Args:
        spec: the study specification.
        size: brokers in a private instance, when one must be started.
        dry: write the scripts and submit nothing.
        maestro_args: further ``maestro run`` options.
        dry_without_flux: where flux-core is not installed, do a dry run instead of failing.
        private: start a private instance even where a broker is reachable.
    """
    check_spec(spec)  # a mistake in the spec is one line here, before anything runs
    extra = maestro_args or []
    if dry:
        _say("dry run: writing every step's script, submitting nothing")
        return _dry_run(spec, _maestro(spec, extra, dry=True))
    command = _maestro(spec, extra, dry=False)
    broker = None if private else _reachable_broker()
    if broker:
        _say(f"submitting to the running broker at {broker}")
        return subprocess.call(command)
    if shutil.which("flux") is None:
        if not dry_without_flux:
            _say(NO_FLUX)
            return 2
        _say(DRY_INSTEAD)
        return _dry_run(spec, _maestro(spec, extra, dry=True))
    bindings.bindings()  # fail with install advice before starting anything
    _say(f"starting a private Flux instance of {size} broker(s): flux start --test-size={size}")
    status = subprocess.call(["flux", "start", f"--test-size={size}", *command])
    _say(f"private instance shut down; study exit status {status}")
    return status
