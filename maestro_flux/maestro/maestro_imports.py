"""Maestro's modules, imported without the DeprecationWarnings its adapter scan
raises on Python 3.12+ (pkgutil.get_loader, load_module): they are Maestro's to
fix, and a user running maestro-flux should not see them as ours."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType


def import_maestro(name: str) -> ModuleType:
    """``importlib.import_module(name)`` for a maestrowf module, quietly."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return importlib.import_module(name)
