"""The double's after-dependencies, as flux-core's dependency-after jobtap plugin
(src/modules/job-manager/plugins/dependency-after.c) handles them, and as the real
brokers answered (tests/recordings/VERSION/dependencies.json):

- at submission, each ``afterany``/``afterok``/``afternotok`` dependency is checked:
  a bad id, an unknown job, another user's job, or an inactive target that can
  never satisfy it refuses the whole submission (EINVAL, the plugin's text);
- a job with unresolved dependencies waits in DEPEND;
- when a target ends, its dependents are released, or fail with a ``dependency``
  exception ("dependency after-success=ID can never be satisfied", or from 0.76 on
  "... job never started" for a target that was never allocated).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from fluxdouble import jobid as jobids

#: Which target results release which scheme (the target was allocated).
RELEASED_BY = {
    "afterany": {"COMPLETED", "FAILED", "CANCELED", "TIMEOUT"},
    "afterok": {"COMPLETED"},
    "afternotok": {"FAILED", "CANCELED", "TIMEOUT"},
}


#: How the plugin names each scheme in a dependency's description (after_typestr).
TYPESTR = {"afterany": "after-finish", "afterok": "after-success", "afternotok": "after-failure"}


class Refused(Exception):
    """A submission the plugin rejects; the broker answers EINVAL with the text."""

    errnum = errno.EINVAL


@dataclass(frozen=True)
class After:
    """One dependency of job ``depid`` on job ``target``."""

    depid: int
    scheme: str
    target: int
    value: str  # the target id as the submitter wrote it
    description: str  # "after-success=<value>", as the plugin names it


def parse(depid: int, entry: dict) -> After:
    """An After from one ``attributes.system.dependencies`` entry, or Refused."""
    scheme, value = entry.get("scheme"), str(entry.get("value"))
    if scheme not in RELEASED_BY:
        raise Refused(f"invalid dependency scheme: {scheme}")
    try:
        target = jobids.parse(value)
    except ValueError:
        raise Refused(f'dependency: {scheme}: "{value}" is not a valid jobid') from None
    return After(depid, scheme, target, value, f"{TYPESTR[scheme]}={value}")


def check(after: After, target: Any, userid: int, version: Any) -> bool:
    """Refused if ``after`` can never be met; True if already met (target inactive)."""
    value = after.value
    if target is None:
        raise Refused(f"dependency: {after.scheme}: id {value}: job not found")
    if target.userid != userid:
        raise Refused(f"{after.scheme}: Permission denied for job {value}")
    if target.state != "INACTIVE":
        return False
    if version.dependency_never_started and after.scheme != "afterany" and not target.allocated:
        raise Refused(f"dependency: after: {value} never started")
    if after.scheme == "afterok" and target.result() != "COMPLETED":
        raise Refused(f"dependency: afterok: job {value} failed or was canceled")
    if after.scheme == "afternotok" and target.result() == "COMPLETED":
        raise Refused(f"dependency: afternotok: job {value} succeeded")
    return True


def outcome(after: After, target: Any, version: Any) -> str | None:
    """What the end of ``target`` does to ``after``: None releases it, else the
    note of the ``dependency`` exception its job gets."""
    if not target.allocated:
        if after.scheme == "afterany" and version.afterany_after_never_started:
            return None
        if version.dependency_never_started:
            return f"dependency {after.description} job never started"
        if after.scheme == "afternotok":  # 0.61: released by any result but success
            return None
    elif target.result() in RELEASED_BY[after.scheme]:
        return None
    return f"dependency {after.description} can never be satisfied"
