"""Messages shown once per study: Maestro rebuilds the adapter two or three times
per conductor cycle, and a warning about the batch block or a lost broker should
reach the log once, not every cycle."""

from __future__ import annotations

import logging

from maestro_flux.model.bounded import Bounded

#: Keys remembered per study; the oldest are forgotten first, so a study of any
#: size holds a bounded set (a forgotten key can only make a message repeat).
MAX_KEYS = 4096


class Notices:
    """The keys of the messages already shown, at most ``limit`` of them."""

    def __init__(self, limit: int = MAX_KEYS) -> None:
        self._seen: Bounded[str, bool] = Bounded(limit)

    def __len__(self) -> int:
        return len(self._seen)

    def first(self, key: str) -> bool:
        """True the first time ``key`` is seen (and remembers it)."""
        if self._seen.get(key):
            return False
        self._seen.put(key, True)
        return True

    def log_once(self, logger: logging.Logger, level: int, key: str, message: str,
                 *args: object) -> None:
        """Log ``message`` the first time ``key`` is seen by ``logger``."""
        if self.first(f"{logger.name}\0{key}"):
            logger.log(level, message, *args)
