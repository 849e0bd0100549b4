"""The only module that imports the Flux Python bindings.

Everything else in maestro-flux deals in plain data; the rest of this package
(``broker/``) reaches the bindings through :func:`bindings`. They are imported
lazily, on the first call that needs a broker, so that importing maestro-flux,
dry runs and script writing work where flux-python is not installed.

``MAESTRO_FLUX_BINDINGS`` names a module to use in place of ``flux``; the
contract tests point it at their test double.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from functools import lru_cache
from types import ModuleType
from typing import Any

from maestro_flux.model.errors import BindingsMissing

BINDINGS_ENV = "MAESTRO_FLUX_BINDINGS"
INSTALL_HINT = ("install the bindings that match your broker: run 'flux version' to see "
                "its version V, then pip install \"flux-python==V\" ply, and make sure "
                "libflux-core.so.2 is on LD_LIBRARY_PATH")


@lru_cache(maxsize=1)
def bindings() -> ModuleType:
    """The ``flux`` package (or its stand-in), with ``flux.job`` loaded.

    Raises:
        BindingsMissing: one line saying what is missing and how to install it.
    """
    name = os.environ.get(BINDINGS_ENV, "flux")
    try:
        root = importlib.import_module(name)
        importlib.import_module(name + ".job")
        importlib.import_module(name + ".uri")
    except ImportError as err:
        raise BindingsMissing(f"the Flux Python bindings cannot be imported ({err}); "
                              f"{INSTALL_HINT}") from None
    return root


def bindings_version() -> str | None:
    """flux-python's installed version, read without importing it."""
    try:
        return importlib.metadata.version("flux-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def connect(uri: str | None) -> Any:
    """Open a handle on the broker at ``uri`` (None: FLUX_URI, else the system instance).

    An empty FLUX_URI counts as unset: libflux would read it as a connector named ''.
    It is removed from this process's environment, so that Flux's default applies.
    """
    flux = bindings()
    if uri:
        return flux.Flux(uri)
    if os.environ.get("FLUX_URI") == "":
        del os.environ["FLUX_URI"]
    return flux.Flux()


def attr(handle: Any, name: str) -> str:
    """A broker attribute (an RPC the first time)."""
    return handle.attr_get(name)


def resolve_uri(target: str) -> str:
    """What ``flux uri TARGET`` prints: Flux's own resolver, with its plugins
    (jobid:, slurm:, lsf:, pid:); local:// and ssh:// come back unchanged.

    Raises whatever the resolver raises: ValueError, OSError or
    NotImplementedError (no plugin for the scheme).
    """
    return str(bindings().uri.FluxURIResolver().resolve(target))


def parse_jobid(text: str) -> int:
    """Any id form ``flux.job.JobID`` parses (used for the mnemonic words form)."""
    return int(bindings().job.JobID(text))
