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
from maestro_flux.model.errors import MaestroFluxError

NO_FLUX = ("flux-core is not installed here (no 'flux' on PATH), so no broker can be "
           "started: install flux-core (your site's module, spack install flux-core, or "
           "a source build) and matching flux-python bindings, or add --dry to write the "
           "scripts without submitting")


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
    return [sys.executable, "-m", "maestrowf.maestro", *quiet, "run", *mode, "-y", *extra, spec]


def _dry_run(command: list[str]) -> int:
    started = time.time()
    status = subprocess.call(command)
    studies = [p for p in Path.cwd().glob("**/status.csv") if p.stat().st_mtime >= started]
    if status == 0 and studies:
        _summarize_dry_run(max(studies, key=lambda p: p.stat().st_mtime).parent)
    return status


def _summarize_dry_run(study: Path) -> None:
    scripts = sorted(study.glob("**/*.flux.sh"))
    _say(f"dry run complete: {len(scripts)} step script(s) written under {study}")
    print((study / "status.csv").read_text())
    if scripts:
        print(f"--- {scripts[0]} ---\n{scripts[0].read_text()}")


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
    extra = maestro_args or []
    if dry:
        _say("dry run: writing every step's script, submitting nothing")
        return _dry_run(_maestro(spec, extra, dry=True))
    command = _maestro(spec, extra, dry=False)
    broker = None if private else _reachable_broker()
    if broker:
        _say(f"submitting to the running broker at {broker}")
        return subprocess.call(command)
    if shutil.which("flux") is None:
        _say(NO_FLUX)
        if not dry_without_flux:
            return 2
        _say("so this is a DRY RUN: every step's script is written, nothing is submitted")
        return _dry_run(_maestro(spec, extra, dry=True))
    bindings.bindings()  # fail with install advice before starting anything
    _say(f"starting a private Flux instance of {size} broker(s): flux start --test-size={size}")
    status = subprocess.call(["flux", "start", f"--test-size={size}", *command])
    _say(f"private instance shut down; study exit status {status}")
    return status
