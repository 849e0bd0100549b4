"""What a broker's queues and accounting are, asked as a guest may ask.

A guest of a multi-user instance is refused ``job-manager.jobtap`` (and, from 0.88
on, ``sched.resource-status``: "Request requires owner credentials"), while
``config.get`` and ``job-manager.queue-list`` answer (recorded on 0.61, 0.76 and 0.88
in tests/recordings/VERSION/guest_rpcs.json). ``config.get`` is recorded on 0.61,
0.76 and 0.88 alike (tests/recordings/VERSION/errors.json), so it is asked
first; ``job-manager.queue-list`` (in the job manager since before 0.61) is the
fallback.
"""

from __future__ import annotations

from typing import Any

from maestro_flux.model import queues
from maestro_flux.model.queues import BrokerQueues


def _why(err: OSError) -> str:
    return str(err.strerror or err)


def lookup_queues(handle: Any) -> BrokerQueues:
    """The broker's named queues: ``config.get``, else ``job-manager.queue-list``."""
    try:
        return queues.queues_from_config(handle.rpc("config.get").get())
    except OSError as err:
        first = f"config.get: {_why(err)}"
    try:
        return queues.queues_from_list(handle.rpc("job-manager.queue-list").get())
    except OSError as err:
        return BrokerQueues(None, f"{first}; job-manager.queue-list: {_why(err)}")


def accounting(handle: Any) -> tuple[bool | None, str]:
    """Whether flux-accounting checks banks here: (True/False, how we know), or
    (None, why not) when neither the jobtap list nor the configuration tells."""
    try:
        plugins = handle.rpc("job-manager.jobtap", {"query_only": True}).get()["plugins"]
        return any(queues.ACCOUNTING_PLUGIN in name for name in plugins), "job-manager.jobtap"
    except OSError as err:
        refused = f"job-manager.jobtap refused ({_why(err)}: a guest cannot ask it)"
    try:
        if queues.loads_accounting(handle.rpc("config.get").get()):
            return True, "the configuration loads it"
    except OSError:
        pass
    return None, f"{refused}, and the configuration does not load {queues.ACCOUNTING_PLUGIN}"
