"""Submit flags only the instance owner may use.

A guest of a multi-user instance (anyone but its owner) is refused the
``waitable`` flag (EINVAL, "only the instance owner can submit with
FLUX_JOB_WAITABLE") and the ``novalidate`` flag (EPERM, "... with
FLUX_JOB_NOVALIDATE"), as flux-core's job-ingest refuses them; urgency above 16 is
the third refusal (urgency.clamp). A guest's step is submitted without them, with
one warning per flag, rather than failed.
"""

from __future__ import annotations

from collections.abc import Iterable

OWNER_ONLY_FLAGS = ("waitable", "novalidate")


def guest_flags(flags: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the flags a guest may submit with, the owner-only ones it asked for)."""
    flags = list(flags)
    return ([f for f in flags if f not in OWNER_ONLY_FLAGS],
            [f for f in flags if f in OWNER_ONLY_FLAGS])
