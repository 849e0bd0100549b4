"""An instance's resources, asked as any user may ask (``resource.status``)."""

from __future__ import annotations

from typing import Any

from maestro_flux.model.inventory import Inventory, inventory_from_R


def inventory(handle: Any) -> Inventory:
    """The instance's nodes, cores and GPUs; unknown (with why) if it will not say."""
    try:
        return inventory_from_R(handle.rpc("resource.status").get()["R"] or {})
    except OSError as err:
        return Inventory(None, why=f"resource.status: {err.strerror or err}")
