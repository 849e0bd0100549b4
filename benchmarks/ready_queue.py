"""The ready queue's cost in one of Maestro's rounds, before and after (issue 23).

Maestro's round asks ``name not in ready_steps`` for each step it finds ready and
appends it, takes ``len(ready_steps)``, then pops that many. Before, the pipeline's
queue was a deque whose ``popleft`` scanned the whole queue for a step with a job
sent ahead (and a deque's ``in`` scans too): quadratic in the ready steps. After
(maestro/ahead.py ``ReadyQueue``), two deques and a count per name: O(1) a step.
Both are timed side by side in one run, on the same steps, nothing sent ahead.
"""

from __future__ import annotations

import time
from collections import deque
from types import SimpleNamespace
from typing import Any

from benchmarks.report import Row
from maestro_flux.maestro.ahead import ReadyQueue, throttle_room
from maestro_flux.maestro.study_state import StudyState


class DequeQueue(deque):
    """The queue as it was before issue 23 (maestro/ahead.py ``AheadFirst``), kept
    here as the baseline: every ``popleft`` scans the queue for a job sent ahead."""

    def __init__(self, items: Any, study: StudyState, graph: Any) -> None:
        super().__init__(items)
        self._study, self._graph = study, graph

    def popleft(self) -> Any:
        for name in self:
            if name in self._study.ahead:
                self.remove(name)
                return name
        return super().popleft()

    def __len__(self) -> int:
        total = super().__len__()
        room = throttle_room(self._graph, self._study)
        if room is None:
            return total
        adopting = sum(1 for name in self if name in self._study.ahead)
        return adopting + min(total - adopting, room)


def one_round(queue_class: type, names: list[str]) -> float:
    """Seconds Maestro's round spends in the queue for ``names``, all ready."""
    study = StudyState("bench")
    graph = SimpleNamespace(_submission_throttle=0, in_progress=set())
    started = time.perf_counter()
    queue = queue_class((), study, graph)
    for name in names:  # executiongraph.py: "if key not in self.ready_steps: append"
        if name not in queue:
            queue.append(name)
    for _ in range(len(queue)):
        queue.popleft()
    return time.perf_counter() - started


def ready_queue_rows(sizes: list[int], repeats: int = 3) -> list[Row]:
    rows = []
    for size in sizes:
        names = [f"leaf_X.{n}" for n in range(size)]
        figure = f"one round's ready queue, {size} ready steps"
        for label, queue_class, reference in (("after: ReadyQueue", ReadyQueue, True),
                                              ("before: deque scanned", DequeQueue, False)):
            times = sorted(one_round(queue_class, names) for _ in range(repeats))
            rows.append(Row(figure, label, times[len(times) // 2], "s", reference=reference,
                            note=f"median of {repeats}; min {times[0]:.4f}, "
                                 f"max {times[-1]:.4f}"))
    return rows
