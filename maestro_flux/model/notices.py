"""Log a message once per process: Maestro rebuilds the adapter every cycle,
and a study's conductor is one process."""

from __future__ import annotations

import logging

_SEEN: set[tuple[str, str]] = set()


def log_once(logger: logging.Logger, level: int, key: str, message: str, *args: object) -> None:
    """Log ``message`` the first time ``key`` is seen by ``logger`` in this process."""
    if (logger.name, key) in _SEEN:
        return
    _SEEN.add((logger.name, key))
    logger.log(level, message, *args)
