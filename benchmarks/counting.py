"""Counting connections and requests at the bindings boundary, from outside the package.

Every handle either adapter opens is made by ``<bindings>.Flux``; we swap that class
for a subclass that remembers its instances. Requests are read from libflux's own
per-handle message counters (``flux_get_msgcounters``: every request the handle sent,
whichever Python API sent it). The test double has no such counters, so there we
count ``rpc`` calls, through which all of its requests go.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

HANDLES: list[Any] = []


@dataclass(frozen=True)
class Tally:
    """Connections opened and requests sent, so far, by every counted handle."""

    connections: int
    requests: int

    def __sub__(self, other: Tally) -> Tally:
        return Tally(self.connections - other.connections, self.requests - other.requests)


def install(flux: ModuleType) -> None:
    """Make ``flux.Flux`` a counting subclass (idempotent)."""
    base = flux.Flux
    if getattr(base, "_bench_counting", False):
        return

    class CountingFlux(base):  # type: ignore[misc, valid-type]
        _bench_counting = True
        _bench_real = flux.__name__ == "flux"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._bench_rpcs = 0
            HANDLES.append(self)

        def rpc(self, *args: Any, **kwargs: Any) -> Any:
            self._bench_rpcs += 1
            return super().rpc(*args, **kwargs)

    flux.Flux = CountingFlux


def _requests(handle: Any) -> int:
    if not handle._bench_real:
        return handle._bench_rpcs
    from flux.core.inner import ffi, raw

    counters = ffi.new("flux_msgcounters_t *")
    raw.flux_get_msgcounters(handle.handle, counters)
    return int(counters.request_tx)


def tally() -> Tally:
    """Connections and requests so far."""
    return Tally(len(HANDLES), sum(_requests(handle) for handle in HANDLES))
