"""Counting connections and requests at the bindings boundary, from outside the package.

Every handle either adapter opens is made by ``<bindings>.Flux``; we wrap it so that
it remembers the handles it makes. Requests are read from libflux's own
per-handle message counters (``flux_get_msgcounters``: every request the handle sent,
whichever Python API sent it). The test double has no such counters, so there we
count ``rpc`` calls, through which all of its requests go.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

HANDLES: list[tuple[Any, bool]] = []  # (handle, is it flux-python's)


@dataclass(frozen=True)
class Tally:
    """Connections opened and requests sent, so far, by every counted handle."""

    connections: int
    requests: int

    def __sub__(self, other: Tally) -> Tally:
        return Tally(self.connections - other.connections, self.requests - other.requests)


def install(flux: ModuleType) -> None:
    """Make ``flux.Flux`` (a factory function in flux-python, a class in the double)
    record every handle it makes (idempotent)."""
    make = flux.Flux
    if getattr(make, "_bench_counting", False):
        return
    real = flux.__name__ == "flux"
    if not real:
        _count_rpc_calls(make)

    def counting_flux(*args: Any, **kwargs: Any) -> Any:
        handle = make(*args, **kwargs)
        HANDLES.append((handle, real))
        return handle

    counting_flux._bench_counting = True  # type: ignore[attr-defined]
    flux.Flux = counting_flux


def _count_rpc_calls(handle_class: type) -> None:
    """The double's requests all go through ``rpc``: count calls per handle."""
    rpc = handle_class.rpc

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._bench_rpcs = getattr(self, "_bench_rpcs", 0) + 1
        return rpc(self, *args, **kwargs)

    handle_class.rpc = counted


def _requests(handle: Any, real: bool) -> int:
    if not real:
        return getattr(handle, "_bench_rpcs", 0)
    from flux.core.inner import ffi, raw

    counters = ffi.new("flux_msgcounters_t *")
    raw.flux_get_msgcounters(handle.handle, counters)
    return int(counters.request_tx)


def tally() -> Tally:
    """Connections and requests so far."""
    return Tally(len(HANDLES), sum(_requests(handle, real) for handle, real in HANDLES))
