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

The real mode's scheduler is flux-core's sched-simple unless
MAESTRO_FLUX_SCHED_PREFIX names a flux-sched (Fluxion) install built against that
flux-core; MAESTRO_FLUX_CONFIG names a TOML file or directory given to
``flux start -o,--config-path`` (tests/flux-config/production.toml: named queues and
node-exclusive matching, as production systems configure Fluxion). The
guest tests also run on a real multi-user instance: see tests/multiuser.py.
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
#: A flux-sched prefix: the real mode's instances run Fluxion instead of sched-simple.
SCHED_PREFIX_ENV = "MAESTRO_FLUX_SCHED_PREFIX"
#: A TOML file or directory for the real mode's instances (``flux start -o,--config-path``).
CONFIG_ENV = "MAESTRO_FLUX_CONFIG"


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
    scheduler: str = "sched-simple"  # or "fluxion", as the broker's module list says
    queues: tuple[str, ...] = ()  # the named queues configured, as config.get says

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


def sched_prefix() -> Path | None:
    """The flux-sched prefix the real mode runs Fluxion from, if one is named."""
    named = os.environ.get(SCHED_PREFIX_ENV)
    return Path(named) if named else None


def real_start_env(base: dict | None = None) -> dict:
    """The environment for ``flux start`` in real mode: no double, no outer broker,
    and Fluxion's module and modprobe paths when MAESTRO_FLUX_SCHED_PREFIX is set
    (without the modprobe path flux start silently loads sched-simple)."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in (bindings.BINDINGS_ENV, "FLUX_URI")}
    sched = sched_prefix()
    if sched:
        env["FLUX_MODULE_PATH_PREPEND"] = str(sched / "lib" / "flux" / "modules")
        env["FLUX_MODPROBE_PATH_APPEND"] = str(sched / "etc" / "flux" / "modprobe")
    return env


def real_config_options() -> list[str]:
    """``flux start`` options for MAESTRO_FLUX_CONFIG, if set."""
    config = os.environ.get(CONFIG_ENV)
    return [f"-o,--config-path={Path(config).resolve()}"] if config else []


#: The initial program's first command where queues may be named: a test instance's
#: named queues start with scheduling stopped (a system instance's admin starts them).
START_QUEUES = "flux queue start --all >/dev/null 2>&1; "


def real_facts(uri: str) -> tuple[str, tuple[str, ...]]:
    """(scheduler, named queues) of a running real instance, as it reports them."""
    env = dict(real_start_env(), FLUX_URI=uri)
    modules = subprocess.run(["flux", "module", "list"], env=env, capture_output=True,
                             text=True, check=True).stdout
    scheduler = "fluxion" if "sched-fluxion-qmanager" in modules else "sched-simple"
    config = subprocess.run(["flux", "config", "get"], env=env, capture_output=True,
                            text=True, check=True).stdout
    return scheduler, tuple(sorted(json.loads(config or "{}").get("queues") or {}))


def _start(param: str, tmp: Path, size: int = 2) -> FluxMode:
    uri_file = tmp / "uri"
    name, _, version = param.partition("-")
    if name == "double":
        env = {bindings.BINDINGS_ENV: "fluxdouble", DOUBLE_VERSION_ENV: version,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS),
                                                           os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "fluxdouble", f"--test-size={size}", f"--rundir={tmp}",
               "--", "sh", "-c", f'echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
        popen_env = dict(os.environ, **env)
    else:
        env, version = {}, real_flux_version()
        cmd = ["flux", "start", f"--test-size={size}", *real_config_options(), "sh", "-c",
               f'{START_QUEUES}echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
        popen_env = real_start_env()
    proc = subprocess.Popen(cmd, env=popen_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = _wait_for_file(uri_file, proc)
    env["FLUX_URI"] = uri
    mode = FluxMode(name, version, uri, env, proc, str(tmp))
    if mode.real:
        mode.scheduler, mode.queues = real_facts(uri)
        if sched_prefix() and mode.scheduler != "fluxion":
            _stop(mode)
            raise RuntimeError(f"{SCHED_PREFIX_ENV}={sched_prefix()}, but the instance "
                               "loaded sched-simple: is that flux-sched built against the "
                               "flux-core on PATH?")
    return mode


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
    if "guest_side" in metafunc.fixturenames:
        _parametrize_guest_side(metafunc)
    if "flux_session" not in metafunc.fixturenames:
        return
    every = metafunc.definition.get_closest_marker("every_version") is not None
    versions = RECORDED_VERSIONS if every else [NEWEST]
    params = [f"double-{version}" for version in versions] if "double" in MODES else []
    params += ["real"] if "real" in MODES else []
    metafunc.parametrize("flux_session", params, indirect=True, scope="session")


def _parametrize_guest_side(metafunc) -> None:
    """Guest tests: a guest of the double, and of a real multi-user instance."""
    params = (["double"] if "double" in MODES else []) + (["multiuser"] if "real" in MODES
                                                          else [])
    metafunc.parametrize("guest_side", params, indirect=True, scope="session")


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
        missing = _real_broker_missing()
        if missing:
            pytest.skip(missing)
    tmp = Path(tempfile.mkdtemp(prefix=f"mf-{request.param}-"))
    mode = _start(request.param, tmp)
    yield mode
    _stop(mode)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def guest_side(request):
    """A broker owned by someone else, and how to act as its guest (tests/multiuser.py):
    the double, and a real multi-user instance where one can be started."""
    import multiuser  # it imports this module

    if request.param == "multiuser":
        missing = multiuser.why_not()
        if missing:
            pytest.skip(missing)
    tmp = multiuser.new_tmp(request.param)
    side = (multiuser.start_multiuser(tmp) if request.param == "multiuser" else
            multiuser.start_double(tmp, NEWEST))
    yield side
    multiuser.stop(side)
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
    sched = sched_prefix()
    config = os.environ.get(CONFIG_ENV)
    real = ("SKIPPED: " + missing if missing else
            f"ON (flux-core {real_flux_version()} at {shutil.which('flux')}, "
            "flux start --test-size=2, scheduler "
            + (f"Fluxion from {sched}" if sched else "sched-simple")
            + (f", config {config}" if config else "") + ")")
    import multiuser

    why = multiuser.why_not()
    guests = ("SKIPPED: " + why if why else
              f"ON ({os.environ[multiuser.PREFIX_ENV]}, users {multiuser.USERS_ENV}="
              f"{':'.join(multiuser._users())})")
    return [f"maestro-flux contract suite: double mode always (flux-core "
            f"{', '.join(RECORDED_VERSIONS)} for every_version tests); real-broker mode {real}",
            f"guest tests on a real multi-user instance: {guests}"]
