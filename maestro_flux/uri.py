"""Which broker a study talks to: ``flux_uri`` in the batch block, then the
``FLUX_URI`` environment variable, then the system instance."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SYSTEM_INSTANCE = "the system instance (Flux's default URI)"


@dataclass(frozen=True)
class BrokerChoice:
    """A chosen URI and why it was chosen."""

    uri: str | None  # None: let Flux pick its default (the system instance)
    source: str

    def describe(self) -> str:
        return f"{self.uri or SYSTEM_INSTANCE} (from {self.source})"


def choose_broker(flux_uri: str | None, environ: Mapping[str, str] | None = None) -> BrokerChoice:
    """Apply the precedence: batch block, then FLUX_URI, then the system instance."""
    environ = os.environ if environ is None else environ
    if flux_uri:
        return BrokerChoice(flux_uri, "batch block flux_uri")
    if environ.get("FLUX_URI"):
        return BrokerChoice(environ["FLUX_URI"], "FLUX_URI environment variable")
    return BrokerChoice(None, "default: neither flux_uri nor FLUX_URI is set")
