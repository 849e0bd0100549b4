"""How Maestro finds our adapter.

Maestro builds its adapter table by importing every module inside its own
``maestrowf/interfaces/script/`` package, in sorted name order, keeping the
last class seen for each key. maestro-flux ships one module there,
``zz_maestro_flux.py`` (see setup.cfg), which calls :func:`register`.
``register`` renames the built-in adapter's key to ``flux-builtin`` before
returning ours, so ``type: flux`` means maestro-flux whatever the scan order,
and the built-in stays reachable for comparison.

An editable install cannot place a file inside another distribution, so
``maestro-flux install-shim`` writes the same module there (and
``maestro-flux remove-shim`` takes it away).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from maestro_flux.model.errors import MaestroFluxError

SHIM_MODULE = "zz_maestro_flux"
BUILTIN_KEY = "flux-builtin"
WRITTEN_MARK = "# written by maestro-flux install-shim"


def register() -> type:
    """Give ``flux`` to our adapter and ``flux-builtin`` to Maestro's; return ours."""
    # Maestro is mid-scan of its adapter package here: a plain import is safe.
    from maestrowf.interfaces.script import fluxscriptadapter

    fluxscriptadapter.FluxScriptAdapter.key = BUILTIN_KEY
    from maestro_flux.maestro import gate
    from maestro_flux.maestro.adapter import FluxAdapter

    gate.install_when_ready()
    return FluxAdapter


def maestro_script_dir() -> Path:
    """Maestro's adapter package directory, found without importing it."""
    spec = importlib.util.find_spec("maestrowf")
    if spec is None or not spec.submodule_search_locations:
        raise MaestroFluxError("maestrowf is not installed in this Python environment")
    return Path(list(spec.submodule_search_locations)[0]) / "interfaces" / "script"


def shim_path() -> Path:
    return maestro_script_dir() / f"{SHIM_MODULE}.py"


def shim_source() -> str:
    """The shim module's text, as shipped in the package."""
    return (Path(__file__).parent / "shim" / f"{SHIM_MODULE}.py").read_text()


def mechanism() -> str:
    """One line saying how Maestro reaches maestro-flux in this environment."""
    try:
        path = shim_path()
    except MaestroFluxError as err:
        return f"none: {err}"
    if not path.exists():
        return (f"none: {path} is missing; run 'maestro-flux install-shim' "
                "(needed after an editable install)")
    how = "maestro-flux install-shim" if WRITTEN_MARK in path.read_text() else "pip"
    return f"shim module {path} (installed by {how})"


def install_shim() -> Path:
    """Write the shim into Maestro's adapter package (for editable installs)."""
    path = shim_path()
    path.write_text(WRITTEN_MARK + "\n" + shim_source())
    return path


def remove_shim() -> Path | None:
    """Remove a shim written by install_shim; leave one that pip installed."""
    path = shim_path()
    if path.exists() and WRITTEN_MARK in path.read_text():
        path.unlink()
        return path
    return None
