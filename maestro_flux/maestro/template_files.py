"""Template files: read once per version of the file, compiled by model/templates.py.

A template is read again when its modification time changes (a user fixing a
template during a study sees the fix from the next script on), and its warnings are
logged once per version.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from maestro_flux.model import templates
from maestro_flux.model.errors import TemplateError

LOGGER = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def _compiled(path: str, mtime: float) -> templates.Compiled:
    try:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
    except OSError as err:
        raise TemplateError(f"template {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"template {path}: not UTF-8 text") from None
    compiled = templates.compile_source(path, source)
    for warning in compiled.warnings:  # once per version: this function's cache
        LOGGER.warning(warning)
    return compiled


def load(path: str) -> templates.Compiled:
    """The compiled template at ``path`` (an absolute path), re-read when it changes."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError as err:
        raise TemplateError(f"template {path}: {err.strerror or err}") from None
    return _compiled(path, mtime)


def render(path: str, context: Mapping[str, Any]) -> str:
    """The template at ``path`` rendered for one step (TemplateError naming the file)."""
    return templates.render(load(path), context)
