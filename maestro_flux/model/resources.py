"""The resource model: one step's request, from which the script header, the
jobspec and the $(LAUNCHER) command are all derived.

A step runs either as a *nested* Flux instance (like ``flux batch``), where the
allocation is ``slots`` slots of ``cores_per_slot`` cores and ``gpus_per_slot``
GPUs spread over ``nodes`` nodes and $(LAUNCHER) packs tasks into it, or as a
*direct* job: one task holding all of the step's cores and GPUs, with no
broker start-up cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maestro_flux.model.errors import StepError
from maestro_flux.model.step_keys import exclusive_parts, walltime_seconds
from maestro_flux.model.urgency import clamp

LAUNCHER_TOKEN = "$(LAUNCHER)"


@dataclass(frozen=True)
class StepResources:
    """What one step asks of Flux. Nothing here knows about Flux's API."""

    nested: bool
    nodes: int | None
    slots: int
    cores_per_slot: int
    gpus_per_slot: int
    exclusive: bool
    duration: float  # seconds; 0 means unlimited
    urgency: int
    # What $(LAUNCHER) asks for inside a nested instance.
    tasks: int
    cores_per_task: int
    gpus_per_task: int
    launcher_exclusive: bool


def uses_launcher(run: Mapping[str, Any]) -> bool:
    """True if the step's command or restart command uses $(LAUNCHER)."""
    return any(LAUNCHER_TOKEN in (run.get(key) or "") for key in ("cmd", "restart"))


def wants_nested(run: Mapping[str, Any], options: Mapping[str, Any],
                 default: bool | None) -> bool:
    """The nested-or-direct rule (documented in README and docs/).

    The step key ``nested`` wins, then the profile's or batch block's
    ``nested``; otherwise a step that uses $(LAUNCHER), asks for more than one
    node, or configures its instance (conf, broker-opts) gets its own
    instance, and every other step runs as a plain job.
    """
    if isinstance(run.get("nested"), bool):
        return run["nested"]
    if default is not None:
        return default
    return (uses_launcher(run) or (options.get("nodes") or 0) > 1
            or bool(options.get("conf") or options.get("broker-opts")))


def _check(nested: bool, nodes: int | None, slots: int, exclusive: bool) -> None:
    if nodes and nodes > slots:
        raise StepError(f"'nodes' ({nodes}) must not exceed 'procs'/nslots ({slots}): Flux "
                        "places at least one slot on every node")
    if exclusive and not nodes:
        raise StepError("'exclusive' needs a node count: set 'nodes' on the step")
    if not nested and (nodes or 0) > 1:
        raise StepError(f"'nested: false' cannot span {nodes} nodes: a plain job is one task; "
                        "remove 'nested' or set it to true")


def step_resources(options: Mapping[str, Any], run: Mapping[str, Any],
                   nested: bool) -> StepResources:
    """Build the resource model of one step from its effective flux options.

    Args:
        options: the step's flux batch options after precedence (step keys,
            profile, batch block, template directives).
        run: the step's run block (for $(LAUNCHER) and exclusive's launcher part).
        nested: the outcome of ``wants_nested``.

    Returns:
        StepResources. Raises StepError naming the key at fault.
    """
    nodes = options.get("nodes")
    exclusive = bool(options.get("exclusive"))
    slots = options.get("nslots")
    if slots is None:
        # flux batch: -N without -n means one whole node per slot.
        slots, exclusive = (nodes, True) if nodes else (1, exclusive)
    cores = options.get("cores-per-slot", 1)
    gpus = options.get("gpus-per-slot", 0)
    _check(nested, nodes, slots, exclusive)
    if nested:
        shape = (slots, cores, gpus)
    else:
        shape = (1, slots * cores, slots * gpus)
    return StepResources(
        nested=nested, nodes=nodes, slots=shape[0], cores_per_slot=shape[1],
        gpus_per_slot=shape[2], exclusive=exclusive,
        duration=walltime_seconds(options.get("time-limit"), "time-limit"),
        urgency=clamp(options.get("urgency")),
        tasks=slots, cores_per_task=cores, gpus_per_task=gpus,
        launcher_exclusive=exclusive_parts(run.get("exclusive"))[1],
    )


def planned_resources(options: Mapping[str, Any], run: Mapping[str, Any],
                      nested_default: bool | None) -> StepResources:
    """The step's resource model, nested or direct by :func:`wants_nested`. The
    options that configure an instance (``conf``, ``broker-opts``) need one: on a step
    that runs as a plain job they are refused (StepError), never silently dropped."""
    nested = wants_nested(run, options, nested_default)
    if not nested and (options.get("conf") or options.get("broker-opts")):
        raise StepError("conf and broker-opts configure a nested instance, but this step "
                        "runs as a plain job: set 'nested: true'")
    return step_resources(options, run, nested)


def describe(res: StepResources) -> str:
    """What the step asks for, in words: ``2 nodes (exclusive), 4 slots of 1 core and
    1 GPU``."""
    parts = []
    if res.nodes:
        parts.append(f"{res.nodes} node{'s' if res.nodes != 1 else ''}"
                     + (" (exclusive)" if res.exclusive else ""))
    slot = f"{res.slots} slot{'s' if res.slots != 1 else ''} of {res.cores_per_slot} core"
    slot += "s" if res.cores_per_slot != 1 else ""
    if res.gpus_per_slot:
        slot += f" and {res.gpus_per_slot} GPU{'s' if res.gpus_per_slot != 1 else ''}"
    return ", ".join([*parts, slot])
