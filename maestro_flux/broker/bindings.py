"""The only module that imports the Flux Python bindings.

Everything else in maestro-flux deals in plain data; the rest of this package
(``broker/``) reaches the bindings through :func:`bindings`, :func:`submodule`
and :func:`source_module`. tests/test_layers.py checks that no other module
imports them, by statement or through importlib. They are imported
lazily, on the first call that needs a broker, so that importing maestro-flux,
dry runs and script writing work where flux-python is not installed.

``MAESTRO_FLUX_BINDINGS`` names a module to use in place of ``flux``; the
contract tests point it at their test double.

Every flux-python from FLOOR on is supported; what differs between versions is
found by asking the bindings (apply_options.py), never by comparing versions.
Bindings older than FLOOR get one warning line at first use.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
from functools import lru_cache
from types import ModuleType
from typing import Any

from maestro_flux.model.errors import BindingsMissing

LOGGER = logging.getLogger(__name__)
#: The oldest flux-core/flux-python the suite has passed on (setup.cfg says the same).
FLOOR = "0.61.2"
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
    found = loaded_version(root)
    if found and below_floor(found):
        # Once per process: this function's cache makes it so.
        LOGGER.warning("maestro-flux: flux-python %s is older than %s, the oldest version "
                       "maestro-flux is tested on; use flux-core and flux-python %s or later",
                       found, FLOOR, FLOOR)
    return root


def submodule(name: str) -> ModuleType:
    """A module of the bindings in use, ``name`` relative to the package (``util``)."""
    return importlib.import_module(f"{bindings().__name__}.{name}")


def source_module(relative: str, name: str) -> ModuleType | None:
    """A plain-Python file of the installed flux-python (``relative`` to its ``flux``
    package, e.g. ``job/directives.py``), loaded alone as module ``name``: importing
    the package would load libflux-core, which reading a file must not need. None
    when flux-python is not installed."""
    spec = importlib.util.find_spec("flux")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], *relative.split("/"))
    loader_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    return module


def version_key(version: str) -> tuple[int, ...]:
    """``"0.61.2"`` -> ``(0, 61, 2)``; a suffix (``rc1``, ``-12-gabc``) is ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-")[0])[:3])


def below_floor(version: str) -> bool:
    return version_key(version) < version_key(FLOOR)


def bindings_version() -> str | None:
    """flux-python's installed version, read without importing it."""
    try:
        return importlib.metadata.version("flux-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def loaded_version(module: ModuleType | None = None) -> str | None:
    """The version of the bindings in use: the stand-in's own ``__version__``, the
    flux-python distribution's when the module is its file, else the version of the
    libflux-core they loaded (flux-core's own bindings, on PYTHONPATH)."""
    module = module or bindings()
    own = getattr(module, "__version__", None)
    if own:
        return str(own)
    try:
        dist = importlib.metadata.distribution("flux-python")
        if os.path.dirname(module.__file__) == os.path.normpath(dist.locate_file("flux")):
            return dist.version
    except (importlib.metadata.PackageNotFoundError, TypeError):
        pass
    try:
        raw = importlib.import_module(module.__name__ + ".core.inner").raw  # module's own
        text = raw.flux_core_version_string()
        return text.decode() if isinstance(text, bytes) else str(text)
    except (ImportError, AttributeError):
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
