"""Node failures: which ended jobs Maestro resubmits, and how often per step.

A job that Flux ends with a ``node-failure`` or ``lost`` exception did not fail by
its own doing, so Maestro is told HWFAILURE and submits the step again. Maestro
resubmits a HWFAILURE without limit, so the bound is kept here, per step:
``batch.node_failure_retries`` (default 1, as Slurm requeues a batch job once on
node failure). Past the bound the step is FAILED, with a reason.

:func:`after_node_failure` is the decision; :class:`NodeFailures` is the study's
count of retries, with the job id -> step map it needs because the adapter's
``check_jobs`` sees job ids only. Both are plain data (a journal can keep them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maestro_flux.model.states import REASONS, JobStatus

#: Exception types of a job that the hardware, not the step, ended.
NODE_FAILURE_TYPES = frozenset(("node-failure", "lost"))
#: batch.node_failure_retries when the block does not set it.
DEFAULT_RETRIES = 1


@dataclass(frozen=True)
class Decision:
    """What Maestro is told of a job that a node failure ended, and why."""

    state: str  # the name of a Maestro State: HWFAILURE (resubmit) or FAILED
    reason: str
    step: str | None = None  # the step whose job it was, where known


def is_node_failure(status: JobStatus) -> bool:
    """True for a job that ended without completing because of its nodes."""
    return (status.state == "INACTIVE" and status.result != "COMPLETED"
            and status.exception_type in NODE_FAILURE_TYPES)


def _what(status: JobStatus) -> str:
    kind = status.exception_type or ""
    note = f": {status.exception_note}" if status.exception_note else ""
    return f"{REASONS.get(kind, kind)}{note}"


def after_node_failure(status: JobStatus, retries: int, bound: int) -> Decision:
    """The decision for a node-failed job whose step was retried ``retries`` times,
    under a bound of ``bound`` retries."""
    if retries < bound:
        return Decision("HWFAILURE", f"{_what(status)}; resubmitted (retry {retries + 1} "
                                     f"of {bound})")
    return Decision("FAILED", f"{_what(status)}; retried {retries} time(s), the bound "
                              f"(batch.node_failure_retries: {bound})")


@dataclass
class NodeFailures:
    """One study's node-failure retries: plain data, keyed by ASCII f58 job id and
    step name, so that a journal can write it and read it back."""

    #: Step name -> retries made after node failures.
    retries: dict[str, int] = field(default_factory=dict)
    #: Job id -> the step it is a job of, from when the id is known until the job ends.
    steps: dict[str, str] = field(default_factory=dict)
    #: Job id -> the decision taken for it: a job is counted once, however often
    #: it is polled (the pipeline polls between Maestro's rounds too).
    decided: dict[str, Decision] = field(default_factory=dict)

    def known(self, jobid: str, step: str) -> None:
        """Remember that ``jobid`` is a job of ``step``."""
        self.steps[jobid] = step

    def ended(self, jobid: str) -> None:
        """Forget a job that ended otherwise (the map holds jobs in flight only)."""
        self.steps.pop(jobid, None)

    def decide(self, jobid: str, status: JobStatus, bound: int) -> Decision:
        """The decision for a node-failed job (see :func:`after_node_failure`), taken
        once per job. A job of no known step is not retried: no bound could be kept."""
        if jobid not in self.decided:
            self.decided[jobid] = self._decide(jobid, status, bound)
        return self.decided[jobid]

    def _decide(self, jobid: str, status: JobStatus, bound: int) -> Decision:
        step = self.steps.pop(jobid, None)
        if step is None:
            return Decision("FAILED", f"{_what(status)}; not retried: its step is not "
                                      "known to this conductor")
        decision = after_node_failure(status, self.retries.get(step, 0), bound)
        if decision.state == "HWFAILURE":
            self.retries[step] = self.retries.get(step, 0) + 1
        return Decision(decision.state, decision.reason, step)

    def as_data(self) -> dict:
        """The retry counts and the id map, as JSON-ready data."""
        return {"retries": dict(self.retries), "steps": dict(self.steps)}
