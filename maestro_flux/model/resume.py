"""What resuming a study changes in Maestro's last graph, from the journal.

Maestro pickles its graph once per conductor cycle, so a conductor killed during a
cycle leaves jobs in Flux that the graph does not know: jobs Maestro submitted,
jobs sent ahead, and jobs whose submission began but whose id was never written
(found again in the broker by their token). :func:`reconcile` decides, with no I/O,
which of them each step keeps, so that no step is submitted twice:

- a job of Maestro's (or a job sent ahead that Maestro had adopted) that the step's
  record lacks is added to the record, and the step is polled from then on;
- a job sent ahead, neither adopted nor dropped, goes back to the study's jobs sent
  ahead, for Maestro to adopt when the step is ready;
- a step that never reached Flux stays as it is and is submitted when it is ready;
- a step restarted in a cycle after the last pickle gets its restart count back
  from the journal, so that the restart limit (``-r``) holds across resumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from maestro_flux.model.ahead import AheadJob
from maestro_flux.model.journal import Replay, Sent

UNSUBMITTED = "INITIALIZED"
#: Step states whose record still takes jobs: not yet submitted, or in Flux.
TAKES_JOBS = {"INITIALIZED", "PENDING", "QUEUED", "RUNNING", "FINISHING", "TIMEDOUT",
              "HWFAILURE", "NOTFOUND"}


@dataclass(frozen=True)
class StepRecord:
    """A step of the graph as resume needs it."""

    state: str  # the name of its Maestro State
    jobids: tuple[str, ...] = ()
    restarts: int = 0


@dataclass
class ResumePlan:
    """What to change in the graph before the conductor loop goes on."""

    #: step -> job ids to append to its record (in order); the step is then polled.
    record: dict[str, list[str]] = field(default_factory=dict)
    #: step -> its job sent ahead, back in the study's state.
    ahead: dict[str, AheadJob] = field(default_factory=dict)
    #: step -> its restart count, where the journal knows of more than the graph.
    restarts: dict[str, int] = field(default_factory=dict)
    #: How many open submissions were not found in Flux: they never reached it.
    never_sent: int = 0

    @property
    def jobs_kept(self) -> int:
        return sum(len(ids) for ids in self.record.values()) + len(self.ahead)


def reconcile(steps: Mapping[str, StepRecord], replay: Replay,
              found: Mapping[str, str]) -> ResumePlan:
    """The plan for ``steps`` given the journal and the ids ``found`` in the broker for
    submissions the journal has no id for (token -> job id)."""
    plan = ResumePlan(restarts={name: count for name, count in replay.restarts.items()
                                if name in steps and count > steps[name].restarts})
    for sent in replay.sent.values():
        jobid = sent.jobid or found.get(sent.token)
        step = steps.get(sent.step)
        if jobid is None:
            plan.never_sent += sent.open  # not found: it never reached Flux
            continue
        if step is None or jobid in step.jobids or step.state not in TAKES_JOBS:
            continue
        if sent.kind == "ahead" and not sent.adopted:
            _keep_ahead(plan, sent, jobid, step)
        else:
            plan.record.setdefault(sent.step, []).append(jobid)
            plan.ahead.pop(sent.step, None)  # adopted after all
    return plan


def _keep_ahead(plan: ResumePlan, sent: Sent, jobid: str, step: StepRecord) -> None:
    if not sent.dropped and step.state == UNSUBMITTED and sent.step not in plan.record:
        plan.ahead[sent.step] = AheadJob(jobid, sent.waits_on)
