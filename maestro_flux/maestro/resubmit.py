"""Steps Maestro is to resubmit after a HWFAILURE, freed from its throttle.

Maestro 1.2 answers a HWFAILURE by appending the step to ``ready_steps`` but
leaves it in ``in_progress``, which its throttle (``-t``) counts. With the
throttle full of such steps none is resubmitted, ever; each cycle polls their
ended jobs again and appends them again. Before each of Maestro's rounds the
pipeline (pipeline.py) takes them out of ``in_progress`` (Maestro adds a step
back when it submits it) and keeps one entry of each in ``ready_steps``.
"""

from __future__ import annotations

from collections import deque
from typing import Any


def free_resubmissions(graph: Any) -> set[str]:
    """Take the steps awaiting resubmission out of ``in_progress``; returns them."""
    waiting = set(graph.ready_steps) & set(graph.in_progress)
    if waiting:
        graph.in_progress.difference_update(waiting)
        graph.ready_steps = deque(dict.fromkeys(graph.ready_steps))
    return waiting
