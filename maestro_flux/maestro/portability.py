"""A step's queue fitted to the broker it is submitted to (model/queues.py decides).

The queues are looked up once per study, on the first step that names a queue
(never when the adapter is constructed), and kept on the broker connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from maestro_flux.broker.connection import Broker
from maestro_flux.model.queues import QueueFit, dropped_warning, fit_queue

LOGGER = logging.getLogger(__name__)


def fit_to_broker(options: Mapping[str, Any], broker_of: Callable[[], Broker],
                  portable: bool) -> QueueFit:
    """The step's options with its queue kept, dropped (warned once per study) or refused.

    Raises:
        StepError: the broker has named queues and not the one asked for.
    """
    if not options.get("queue"):
        return QueueFit(dict(options))  # nothing to look up: no request sent
    broker = broker_of()  # only now: a step without a queue never touches the broker
    fit = fit_queue(options, broker.queues(), broker.label, portable)
    if fit.dropped:  # the broker's notices are its study's
        broker.notices.log_once(LOGGER, logging.WARNING,
                                f"queue-dropped:{fit.dropped}:{broker.label}",
                                dropped_warning(fit.dropped, broker.label))
    return fit
