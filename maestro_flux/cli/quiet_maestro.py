"""``maestro`` as maestro-flux runs it: Maestro's own main, without the four
"... Logging Level -- Enabled" lines it logs on start, which tell a user nothing."""

from __future__ import annotations

import logging

from maestro_flux.maestro.maestro_imports import import_maestro

#: The loggers Maestro announces its logging level on (maestro run, and its conductor).
ANNOUNCING = ("maestrowf.maestro", "maestrowf.conductor")


class _NoLevelBanner(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().endswith("Logging Level -- Enabled")


def main() -> None:
    """Run Maestro's command line (arguments from sys.argv), banner filtered out."""
    for name in ANNOUNCING:
        logging.getLogger(name).addFilter(_NoLevelBanner())
    import_maestro("maestrowf.maestro").main()


if __name__ == "__main__":
    main()
