"""Queue and bank portability: what a step's queue becomes on the broker at hand.

A production spec names the production machine's queue and bank (``queue:
pdebug``, ``bank: guests``). Elsewhere, inside an allocation (``flux alloc``,
``srun flux start``) or in the private instance ``maestro-flux run`` starts,
Flux has no named queues and refuses every job that names one. So, as Maestro's
built-in adapter does, a queue is dropped where the broker has only its
anonymous queue (``portable: false`` keeps it); where the broker has named
queues, a queue not among them refuses the step with one line listing them.
A bank is never dropped: without flux-accounting, Flux accepts and ignores it.

Pure: the broker side (broker/queues.py) looks the queues up; this module decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maestro_flux.model.errors import StepError

#: flux-accounting's job-manager plugin: loaded, a bank is checked at submission.
ACCOUNTING_PLUGIN = "mf_priority"


@dataclass(frozen=True)
class BrokerQueues:
    """The named queues of one broker, as looked up once per study."""

    names: tuple[str, ...] | None  # None: could not be looked up
    how: str  # the request that answered, or why none did
    default: str | None = None  # policy.jobspec.defaults.system.queue

    @property
    def known(self) -> bool:
        return self.names is not None

    def describe(self) -> str:
        if self.names is None:
            return f"not checked ({self.how})"
        if not self.names:
            return "none configured (one anonymous queue)"
        default = f"; default {self.default}" if self.default else ""
        return ", ".join(self.names) + default


def queues_from_config(config: Mapping[str, Any]) -> BrokerQueues:
    """The queues in an instance's configuration (``config.get``): its ``[queues]`` table."""
    table = config.get("queues") or {}
    system = (((config.get("policy") or {}).get("jobspec") or {}).get("defaults") or {}).get(
        "system") or {}
    return BrokerQueues(tuple(sorted(table)), "config.get", system.get("queue"))


def queues_from_list(answer: Mapping[str, Any]) -> BrokerQueues:
    """The queues in a ``job-manager.queue-list`` answer (``{"queues": [...]}``)."""
    return BrokerQueues(tuple(sorted(answer.get("queues") or ())), "job-manager.queue-list")


@dataclass(frozen=True)
class QueueFit:
    """A step's options fitted to the broker, and what the script header says about it."""

    options: dict[str, Any]
    note: str | None = None  # a comment line for the script header
    dropped: str | None = None  # the queue dropped, for the once-per-study warning


def fit_queue(options: Mapping[str, Any], queues: BrokerQueues, broker: str,
              portable: bool = True) -> QueueFit:
    """The step's effective options with its queue kept, dropped or refused.

    Args:
        options: the step's effective flux options (every layer merged).
        queues: what the broker has (``BrokerQueues``).
        broker: the broker, as the log names it.
        portable: ``batch.portable``; False keeps a queue the broker lacks.

    Raises:
        StepError: the broker has named queues and not this one (one line listing them).
    """
    queue = options.get("queue")
    if not queue:
        return QueueFit(dict(options))
    if not queues.known:
        return QueueFit(dict(options), f"queue '{queue}' not checked: {queues.how}")
    if queue in queues.names:
        return QueueFit(dict(options))
    if queues.names:
        raise StepError(f"queue '{queue}' does not exist on {broker}; its queues are: "
                        f"{', '.join(queues.names)}")
    if not portable:
        return QueueFit(dict(options), f"queue '{queue}' kept although {broker} has no named "
                                       "queues (batch.portable is false): Flux will refuse it")
    kept = {key: value for key, value in options.items() if key != "queue"}
    return QueueFit(kept, f"queue '{queue}' dropped: {broker} has no named queues "
                          "(batch.portable: false keeps it)", dropped=queue)


def queue_policy(queues: BrokerQueues, portable: bool = True) -> str:
    """What happens to a step's queue on this broker, in one phrase (doctor, render)."""
    if not queues.known:
        return "a queue is submitted as written"
    if queues.names:
        return "a queue not among them refuses the step"
    if portable:
        return "a queue is dropped, with one warning (batch.portable: false keeps it)"
    return "a queue is kept (batch.portable: false) and Flux refuses it"


def dropped_warning(queue: str, broker: str) -> str:
    """The one warning per study about a dropped queue."""
    return (f"maestro-flux: queue '{queue}' dropped from every step that asks for it: "
            f"{broker} has no named queues (set batch.portable: false to keep it)")


def bank_policy(bank: str, accounting: bool | None, broker: str, why: str = "") -> str:
    """What happens to a bank on this broker, for doctor and render.

    Args:
        accounting: whether flux-accounting is loaded; None when it cannot be told.
        why: why it cannot be told (a guest cannot ask job-manager.jobtap).
    """
    if accounting:
        return (f"'{bank}' is checked by flux-accounting on {broker} at submission "
                "('flux account view-user $USER' lists yours)")
    if accounting is False:
        return (f"'{bank}' is kept in the jobspec; {broker} does not run flux-accounting, "
                "so Flux accepts and ignores it")
    return (f"'{bank}' is kept in the jobspec; whether {broker} checks it is unknown: {why}")


def loads_accounting(config: Mapping[str, Any]) -> bool:
    """True if the instance's configuration loads flux-accounting's plugin
    (``[job-manager] plugins = [{load = "mf_priority.so"}]``)."""
    plugins = (config.get("job-manager") or {}).get("plugins") or []
    return any(ACCOUNTING_PLUGIN in str(entry.get("load", "")) for entry in plugins
               if isinstance(entry, Mapping))
