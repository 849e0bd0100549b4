"""The flux-core versions the double answers as, and what differs between them.

Each entry is written from the recordings of that version (tests/recordings/
VERSION/); tests/test_double_versions.py checks the double against them. The
bindings side reads the version from FLUXDOUBLE_VERSION when a call is made;
the broker is started with ``--flux-version`` (default: the same variable).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV = "FLUXDOUBLE_VERSION"
DEFAULT = "0.88.0"


@dataclass(frozen=True)
class Version:
    """What a flux-core release (broker and flux-python) does differently."""

    name: str
    #: The JobspecV1 generation: 61 (0.61 factories only), 76 (factories take the
    #: extra keywords and from_nest_command sets exit-timeout), 88 (from_batch,
    #: from_submit and apply_options).
    jobspec_api: int
    #: flux.job.job_list takes constraint= (0.76 on).
    job_list_constraint: bool
    #: The alloc exception note of an unsatisfiable request says what was needed.
    detailed_unsatisfiable_note: bool
    #: dependency-after refuses or fails after-dependencies (afterany aside) on a job
    #: that never started, "job never started" (0.76 on); 0.61 only says "can never
    #: be satisfied", and releases afternotok dependents of such a job.
    dependency_never_started: bool = True
    #: An afterany dependent of a job that never started is released (0.61, 0.88);
    #: 0.76 fails it too ("job never started").
    afterany_after_never_started: bool = True
    #: flux.job.JournalConsumer exists (bindings_api.json; flux-core 0.68 on). The
    #: broker's job-manager.events-journal is there in every recorded version.
    journal_consumer: bool = True
    #: job-list lists t_priority and t_sched (0.88; src/modules/job-list/job_util.c).
    job_list_priority_times: bool = True


VERSIONS = {v.name: v for v in (
    Version("0.61.2", 61, job_list_constraint=False, detailed_unsatisfiable_note=False,
            dependency_never_started=False, journal_consumer=False,
            job_list_priority_times=False),
    Version("0.76.0", 76, job_list_constraint=True, detailed_unsatisfiable_note=False,
            afterany_after_never_started=False, job_list_priority_times=False),
    Version("0.88.0", 88, job_list_constraint=True, detailed_unsatisfiable_note=True),
)}


def get(name: str | None = None) -> Version:
    """The named version, else FLUXDOUBLE_VERSION's, else DEFAULT."""
    name = name or os.environ.get(ENV) or DEFAULT
    if name not in VERSIONS:
        raise ValueError(f"fluxdouble: no recorded flux-core {name} (have "
                         f"{', '.join(VERSIONS)})")
    return VERSIONS[name]


# -- what a guest is answered (tests/recordings/VERSION/guest_rpcs.json) ------------
#: The versions whose sched-simple answers sched.resource-status to a guest; 0.88 refuses
#: it, "Request requires owner credentials".
SCHED_STATUS_TO_GUESTS = {"0.61.2", "0.76.0"}
#: The versions whose resource.status lists the torpid ranks (0.76 on).
TORPID_RANKS = {"0.76.0", "0.88.0"}
