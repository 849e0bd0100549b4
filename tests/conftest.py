"""One contract suite, two modes.

Tests that take the ``flux_mode`` fixture run twice: against the test double
(``fluxdouble``, always) and against a real broker started with
``flux start --test-size=2`` when ``flux`` is on PATH and the bindings import.
Without them the real mode is skipped, visibly, with the reason in the summary.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
RECORDINGS = TESTS / "recordings"
sys.path.insert(0, str(TESTS))

from maestro_flux.broker import bindings  # noqa: E402
from maestro_flux.maestro.study_state import STUDIES  # noqa: E402


@dataclass
class FluxMode:
    """A running broker and the environment that reaches it."""

    name: str  # "double" or "real"
    uri: str
    env: dict  # variables to set for this mode (in-process and in subprocesses)
    process: subprocess.Popen
    rundir: str

    @property
    def real(self) -> bool:
        return self.name == "real"


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


def _start(name: str, tmp: Path) -> FluxMode:
    uri_file = tmp / "uri"
    if name == "double":
        env = {bindings.BINDINGS_ENV: "fluxdouble",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS),
                                                           os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "fluxdouble", "--test-size=2", f"--rundir={tmp}",
               "--", "sh", "-c", f'echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
        popen_env = dict(os.environ, **env)
    else:
        env = {}
        cmd = ["flux", "start", "--test-size=2", "sh", "-c",
               f'echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
        popen_env = {k: v for k, v in os.environ.items()
                     if k not in (bindings.BINDINGS_ENV, "FLUX_URI")}
    proc = subprocess.Popen(cmd, env=popen_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = _wait_for_file(uri_file, proc)
    env["FLUX_URI"] = uri
    return FluxMode(name, uri, env, proc, str(tmp))


def _stop(mode: FluxMode) -> None:
    try:
        os.killpg(mode.process.pid, signal.SIGTERM)
        mode.process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(mode.process.pid, signal.SIGKILL)


@pytest.fixture(scope="session", params=["double", "real"])
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
    for key, value in flux_session.env.items():
        monkeypatch.setenv(key, value)
    bindings.bindings.cache_clear()
    STUDIES.clear()
    yield flux_session
    bindings.bindings.cache_clear()
    STUDIES.clear()


BROKER_FIXTURES = {"flux_mode", "flux_session"}


def pytest_collection_modifyitems(items):
    """Mark each test unit or contract by whether it takes a broker (an explicit
    mark, e2e for whole studies, wins)."""
    for item in items:
        if any(item.get_closest_marker(m) for m in ("unit", "contract", "e2e")):
            continue
        taken = BROKER_FIXTURES & set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.contract if taken else pytest.mark.unit)


def pytest_report_header(config):
    missing = _real_broker_missing()
    return [f"maestro-flux contract suite: double mode always; real-broker mode "
            f"{'SKIPPED: ' + missing if missing else 'ON (flux start --test-size=2)'}"]
