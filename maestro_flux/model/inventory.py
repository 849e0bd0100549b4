"""What an instance has: nodes, cores and GPUs, counted from its R (RFC 20).

``resource.status`` answers any user, guests included, on every supported
flux-core; its ``R`` lists, per set of ranks, the core and GPU ids of each rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def idset_count(text: str) -> int:
    """How many ids an RFC 22 idset holds: ``"0-3,7"`` -> 5, ``""`` -> 0."""
    total = 0
    for part in filter(None, text.strip("[]").split(",")):
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Inventory:
    """An instance's resources, or why they are not known (``nodes`` None)."""

    nodes: int | None
    cores: int = 0
    gpus: int = 0
    why: str = ""

    def describe(self) -> str:
        """``2 nodes, 4 cores, no GPUs``; or why the resources are not known."""
        if self.nodes is None:
            return f"not known ({self.why})"
        gpus = _plural(self.gpus, "GPU") if self.gpus else "no GPUs"
        return f"{_plural(self.nodes, 'node')}, {_plural(self.cores, 'core')}, {gpus}"


def inventory_from_R(R: Mapping[str, Any]) -> Inventory:
    """Count the ranks, cores and GPUs of an RFC 20 R (version 1)."""
    nodes = cores = gpus = 0
    for entry in (R.get("execution") or {}).get("R_lite") or []:
        ranks = idset_count(str(entry.get("rank", "")))
        children = entry.get("children") or {}
        nodes += ranks
        cores += ranks * idset_count(str(children.get("core", "")))
        gpus += ranks * idset_count(str(children.get("gpu", "")))
    return Inventory(nodes, cores, gpus)
