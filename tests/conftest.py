"""One contract suite, two modes.

Tests that take the ``flux_mode`` fixture run against the test double
(``fluxdouble``, always) and against a real broker started with
``flux start --test-size=2`` when ``flux`` is on PATH and the bindings import.
Without them the real mode is skipped, visibly, with the reason in the summary.

The double answers as the newest recorded flux-core; tests marked
``every_version`` (the broker-facing contract tests) run on the double at every
version recorded in tests/recordings/ as well. The real mode is whichever
flux-core is on PATH: to test several, run the suite once per prefix
(``.ci/run`` does, for each prefix in MAESTRO_FLUX_PREFIXES). Its scheduler is
sched-simple, or Fluxion with MAESTRO_FLUX_SCHED_PREFIX (tests/brokers.py).

Tests that take ``guest_side`` run as the guest of a broker someone else owns: the
double, and a real multi-user instance where one can be started (tests/multiuser.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

import multiuser  # noqa: E402
from brokers import (  # noqa: E402
    NEWEST,
    RECORDED_VERSIONS,
    pointed_at,
    real_broker_missing,
    real_flux_version,
    real_setup,
    start_broker,
    stop_broker,
)

# Hypothesis: "ci" replays the same examples on every run (a seed derived from each
# test, no example database), so CI never fails by chance; "dev" explores new random
# examples each run and remembers failures in .hypothesis/. CI (or tox, which sets
# HYPOTHESIS_PROFILE) selects "ci"; HYPOTHESIS_PROFILE picks either by name.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev")
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI")
                                                              else "dev")
settings.load_profile(HYPOTHESIS_PROFILE)


def pytest_configure(config):
    config.addinivalue_line("markers", "every_version: a broker-facing contract test, run "
                            "on the double at every recorded flux-core version")


#: Which modes to run: "double,real" (the default) or one of them. .ci/run runs the
#: real mode alone once per extra flux-core prefix.
MODES = [m for m in os.environ.get("MAESTRO_FLUX_MODES", "double,real").split(",") if m]


def pytest_generate_tests(metafunc):
    """Modes: the double at the newest recorded version (at every recorded version for
    ``every_version`` tests), and the real broker on PATH (for ``guest_side``: a real
    multi-user instance)."""
    every = metafunc.definition.get_closest_marker("every_version") is not None
    versions = RECORDED_VERSIONS if every else [NEWEST]
    if "guest_side" in metafunc.fixturenames:
        params = [f"double-{version}" for version in versions] if "double" in MODES else []
        params += ["multiuser"] if "real" in MODES else []
        metafunc.parametrize("guest_side", params, indirect=True, scope="session")
    if "flux_session" not in metafunc.fixturenames:
        return
    params = [f"double-{version}" for version in versions] if "double" in MODES else []
    params += ["real"] if "real" in MODES else []
    metafunc.parametrize("flux_session", params, indirect=True, scope="session")


BROKER_FIXTURES = {"flux_mode", "flux_session", "guest_side"}


def pytest_collection_modifyitems(config, items):
    """Mark each test unit or contract by whether it takes a broker (an explicit mark,
    e2e for whole studies, wins). With the real mode alone, the tests that need no
    broker are left out (they ran with the double)."""
    for item in items:
        if any(item.get_closest_marker(m) for m in ("unit", "contract", "e2e")):
            continue
        taken = BROKER_FIXTURES & set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.contract if taken else pytest.mark.unit)
    if "double" in MODES:
        return
    kept = [item for item in items
            if {"flux_session", "guest_side"} & set(getattr(item, "fixturenames", ()))]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


@pytest.fixture(scope="session")
def flux_session(request):
    """A broker for the whole session, in each mode."""
    if request.param == "real":
        missing = real_broker_missing()
        if missing:
            pytest.skip(missing)
    tmp = Path(tempfile.mkdtemp(prefix=f"mf-{request.param}-"))
    mode = start_broker(request.param, tmp)
    yield mode
    stop_broker(mode)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def guest_side(request):
    """A broker owned by someone else, and how to act as its guest (tests/multiuser.py):
    the double (``double-VERSION``: at the newest recorded version, at every one for
    ``every_version`` tests), and a real multi-user instance where one can be started."""
    if request.param == "multiuser":
        missing = multiuser.why_not()
        if missing:
            pytest.skip(missing)
    tmp = Path(tempfile.mkdtemp(prefix=f"mf-{request.param}-"))
    side = (multiuser.start_multiuser(tmp) if request.param == "multiuser" else
            multiuser.start_double(tmp, request.param.partition("-")[2]))
    yield side
    multiuser.stop(side)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def flux_mode(flux_session, monkeypatch):
    """The session's broker, with this process pointed at it and no stale connections."""
    with pointed_at(flux_session, monkeypatch) as mode:
        yield mode


def pytest_report_header(config):
    missing = real_broker_missing()
    real = ("SKIPPED: " + missing if missing else
            f"ON (flux-core {real_flux_version()} at {shutil.which('flux')}, "
            f"flux start --test-size=2, {real_setup()})")
    why = multiuser.why_not()
    guests = ("SKIPPED: " + why if why else
              f"ON ({os.environ[multiuser.PREFIX_ENV]}, users {':'.join(multiuser.users())}, "
              f"{real_setup()})")
    return [f"hypothesis profile: {HYPOTHESIS_PROFILE}",
            f"maestro-flux contract suite: double mode always (flux-core "
            f"{', '.join(RECORDED_VERSIONS)} for every_version tests); real-broker mode {real}",
            f"guest tests on a real multi-user instance: {guests}"]
