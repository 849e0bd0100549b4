"""One contract suite, two modes.

Tests that take the ``flux_mode`` fixture run against the test double
(``fluxdouble``, always) and against a real broker started with
``flux start --test-size=2`` when ``flux`` is on PATH and the bindings import.
Without them the real mode is skipped, visibly, with the reason in the summary.

The double answers as the newest recorded flux-core; tests marked
``every_version`` (the broker-facing contract tests) run on the double at every
version recorded in tests/recordings/ as well. The real mode is whichever
flux-core is on PATH: to test several, run the suite once per prefix
(``.ci/run`` does, for each prefix in MAESTRO_FLUX_PREFIXES).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
RECORDINGS = TESTS / "recordings"
sys.path.insert(0, str(TESTS))

from maestro_flux.broker import bindings  # noqa: E402
from maestro_flux.maestro.study_state import STUDIES  # noqa: E402

DOUBLE_VERSION_ENV = "FLUXDOUBLE_VERSION"


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


#: The flux-core versions recorded in tests/recordings/, oldest first.
RECORDED_VERSIONS = sorted((p.name for p in RECORDINGS.iterdir()
                            if (p / "bindings_api.json").exists()), key=_version_key)
NEWEST = RECORDED_VERSIONS[-1]


@dataclass
class FluxMode:
    """A running broker and the environment that reaches it."""

    name: str  # "double" or "real"
    version: str  # the flux-core version the broker is (or plays)
    uri: str
    env: dict  # variables to set for this mode (in-process and in subprocesses)
    process: subprocess.Popen
    rundir: str

    @property
    def real(self) -> bool:
        return self.name == "real"

    def recording(self, name: str) -> Any:
        """A recording of this mode's flux-core version (skips if it was never recorded)."""
        path = RECORDINGS / self.version / f"{name}.json"
        if not path.exists():
            pytest.skip(f"no recording {name} of flux-core {self.version} in tests/recordings")
        return json.loads(path.read_text())


def _wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 60) -> str:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited early with status {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("broker did not start in time")


def _real_broker_missing() -> str | None:
    if shutil.which("flux") is None:
        return "no real Flux broker: 'flux' is not on PATH (see README, Testing)"
    probe = subprocess.run([sys.executable, "-c", "import flux, flux.job"],
                           capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items()
                                if k != bindings.BINDINGS_ENV})
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"no real Flux broker: the flux-python bindings do not import ({last})"
    return None


def real_flux_version() -> str:
    """The flux-core version of the ``flux`` on PATH (``flux version``'s libflux-core)."""
    done = subprocess.run(["flux", "version"], capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.startswith("libflux-core:"):
            return line.split()[1]
    raise RuntimeError(f"'flux version' printed no libflux-core line: {done.stdout!r}")


def _start(param: str, tmp: Path) -> FluxMode:
    uri_file = tmp / "uri"
    name, _, version = param.partition("-")
    if name == "double":
        env = {bindings.BINDINGS_ENV: "fluxdouble", DOUBLE_VERSION_ENV: version,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS),
                                                           os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "fluxdouble", "--test-size=2", f"--rundir={tmp}",
               "--", "sh", "-c", f'echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
        popen_env = dict(os.environ, **env)
    else:
        env, version = {}, real_flux_version()
        cmd = ["flux", "start", "--test-size=2", "sh", "-c",
               f'echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
        popen_env = {k: v for k, v in os.environ.items()
                     if k not in (bindings.BINDINGS_ENV, "FLUX_URI")}
    proc = subprocess.Popen(cmd, env=popen_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = _wait_for_file(uri_file, proc)
    env["FLUX_URI"] = uri
    return FluxMode(name, version, uri, env, proc, str(tmp))


def _stop(mode: FluxMode) -> None:
    try:
        os.killpg(mode.process.pid, signal.SIGTERM)
        mode.process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(mode.process.pid, signal.SIGKILL)


def pytest_configure(config):
    config.addinivalue_line("markers", "every_version: a broker-facing contract test, run "
                            "on the double at every recorded flux-core version")


#: Which modes to run: "double,real" (the default) or one of them. .ci/run runs the
#: real mode alone once per extra flux-core prefix.
MODES = [m for m in os.environ.get("MAESTRO_FLUX_MODES", "double,real").split(",") if m]


def pytest_generate_tests(metafunc):
    """Modes: the double at the newest recorded version (at every recorded version for
    ``every_version`` tests), and the real broker on PATH."""
    if "flux_session" not in metafunc.fixturenames:
        return
    every = metafunc.definition.get_closest_marker("every_version") is not None
    versions = RECORDED_VERSIONS if every else [NEWEST]
    params = [f"double-{version}" for version in versions] if "double" in MODES else []
    params += ["real"] if "real" in MODES else []
    metafunc.parametrize("flux_session", params, indirect=True, scope="session")


BROKER_FIXTURES = {"flux_mode", "flux_session"}


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
    kept = [item for item in items if "flux_session" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


@pytest.fixture(scope="session")
def flux_session(request):
    """A broker for the whole session, in each mode."""
    if request.param == "real":
        missing = _real_broker_missing()
        if missing:
            pytest.skip(missing)
    tmp = Path(tempfile.mkdtemp(prefix=f"mf-{request.param}-"))
    mode = _start(request.param, tmp)
    yield mode
    _stop(mode)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def flux_mode(flux_session, monkeypatch):
    """The session's broker, with this process pointed at it and no stale connections."""
    monkeypatch.delenv(bindings.BINDINGS_ENV, raising=False)
    monkeypatch.delenv(DOUBLE_VERSION_ENV, raising=False)
    for key, value in flux_session.env.items():
        monkeypatch.setenv(key, value)
    bindings.bindings.cache_clear()
    STUDIES.clear()
    yield flux_session
    bindings.bindings.cache_clear()
    STUDIES.clear()


def pytest_report_header(config):
    missing = _real_broker_missing()
    real = ("SKIPPED: " + missing if missing else
            f"ON (flux-core {real_flux_version()} at {shutil.which('flux')}, "
            "flux start --test-size=2)")
    return [f"maestro-flux contract suite: double mode always (flux-core "
            f"{', '.join(RECORDED_VERSIONS)} for every_version tests); real-broker mode {real}"]
