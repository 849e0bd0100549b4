"""The brokers the suite runs against, and the paths it reads: the session's broker
in each mode (the double playing a recorded flux-core version, or a real
``flux start``), and extra brokers for one test: named queues, more nodes, GPUs,
a lagging job-list.

Real mode configures ``flux start`` with a TOML directory (``[queues.NAME]``, and
a resource file with GPUs: ``resource.noverify`` lets a test instance claim GPUs
the machine lacks, so GPU steps really run); the double takes the same wishes as
options. job-list lag exists only in the double: a real broker cannot be made to lag.

The real mode's scheduler is flux-core's sched-simple unless
MAESTRO_FLUX_SCHED_PREFIX names a flux-sched (Fluxion) install built against that
flux-core; MAESTRO_FLUX_CONFIG names a TOML file or directory given to the
session's ``flux start -o,--config-path`` (tests/flux-config/production/scheduling.toml:
node-exclusive matching, backfilling and the feasibility check, as production systems
configure Fluxion). PRODUCTION, that file with named queues and a default queue beside
it, makes a whole production-shaped instance (tests/test_production_instance.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from maestro_flux.broker import bindings

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
RECORDINGS = TESTS / "recordings"
#: A production-shaped instance's configuration: named queues, a default queue,
#: Fluxion's node-exclusive matching and backfilling, the feasibility check.
PRODUCTION = TESTS / "flux-config" / "production"
PRODUCTION_QUEUES = ("pbatch", "pdebug")  # pbatch the default, as queues.toml says

DOUBLE_VERSION_ENV = "FLUXDOUBLE_VERSION"
#: A flux-sched prefix: the real mode's instances run Fluxion instead of sched-simple.
SCHED_PREFIX_ENV = "MAESTRO_FLUX_SCHED_PREFIX"
#: A TOML file or directory for the session's real instance (``flux start -o,--config-path``).
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
    configured: bool = False  # started with MAESTRO_FLUX_CONFIG
    config: dict = field(default_factory=dict)  # what it was configured with (TOML)

    def as_recorded(self, what: str) -> None:
        """Skip, saying why, unless the broker is set up as the recordings' brokers were
        (sched-simple, no configuration): ``what`` depends on scheduler and config."""
        if self.real and (self.scheduler != "sched-simple" or self.configured):
            pytest.skip(f"{what} was recorded on sched-simple without configuration; this "
                        f"instance runs {self.scheduler} with {os.environ.get(CONFIG_ENV)} "
                        "(tests/test_production.py checks what it answers)")

    @property
    def real(self) -> bool:
        return self.name == "real"

    @property
    def param(self) -> str:
        """What ``start_broker`` takes to start another broker like this one."""
        return "real" if self.real else f"double-{self.version}"

    def recording(self, name: str) -> Any:
        """A recording of this mode's flux-core version (skips if it was never recorded)."""
        path = RECORDINGS / self.version / f"{name}.json"
        if not path.exists():
            pytest.skip(f"no recording {name} of flux-core {self.version} in tests/recordings")
        return json.loads(path.read_text())


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 60) -> str:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited early with status {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("broker did not start in time")


def real_broker_missing() -> str | None:
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


def real_setup() -> str:
    """The real mode's scheduler and configuration, in words (for the report header)."""
    sched, config = sched_prefix(), os.environ.get(CONFIG_ENV)
    return ("scheduler " + (f"Fluxion from {sched}" if sched else "sched-simple")
            + (f", config {config}" if config else ""))


#: The variables of ``real_start_env`` that load Fluxion (tests/multiuser.py passes them on).
SCHED_VARIABLES = ("FLUX_MODULE_PATH_PREPEND", "FLUX_MODPROBE_PATH_APPEND", "FLUX_RC_EXTRA")


def real_start_env(base: dict | None = None) -> dict:
    """The environment for ``flux start`` in real mode: no double, no outer broker,
    and, when MAESTRO_FLUX_SCHED_PREFIX is set, Fluxion's module path and what loads it:
    its modprobe path where that flux-sched installed one (0.54, for a flux-core whose
    rc1 runs modprobe, as 0.88's), else its rc1.d scripts (FLUX_RC_EXTRA: 0.45, for
    flux-core 0.76's rc1).
    Without them flux start silently loads sched-simple."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in (bindings.BINDINGS_ENV, "FLUX_URI")}
    sched = sched_prefix()
    if sched:
        env["FLUX_MODULE_PATH_PREPEND"] = str(sched / "lib" / "flux" / "modules")
        modprobe = sched / "etc" / "flux" / "modprobe"
        if modprobe.is_dir():
            env["FLUX_MODPROBE_PATH_APPEND"] = str(modprobe)
        else:
            env["FLUX_RC_EXTRA"] = str(sched / "etc" / "flux")
    return env


def read_config(path: Path) -> dict:
    """A TOML file, or every ``*.toml`` of a directory, as flux-core reads them."""
    merged: dict = {}
    for part in [path] if path.is_file() else sorted(path.glob("*.toml")):
        merged.update(tomllib.loads(part.read_text()))
    return merged


def real_config() -> Path | None:
    """MAESTRO_FLUX_CONFIG, resolved, if set."""
    config = os.environ.get(CONFIG_ENV)
    return Path(config).resolve() if config else None


#: Requests Fluxion answers any user, where sched-simple may refuse a guest (0.88's does;
#: VERSION/guest_rpcs.json): sched-fluxion-qmanager registers them with FLUX_ROLE_USER
#: (qmanager.cpp; answered to a guest by Fluxion 0.45 on 0.76 and 0.54 on 0.88).
FLUXION_ANSWERS_GUESTS = {"sched.resource-status"}

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


def start_broker(param: str, tmp: Path, size: int = 2) -> FluxMode:
    """The session's broker: ``double-VERSION`` (the double playing that version) or
    ``real`` (``flux start --test-size=SIZE`` of the flux on PATH, with Fluxion and the
    configuration the environment names)."""
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
        config = [f"-o,--config-path={real_config()}"] if real_config() else []
        cmd = ["flux", "start", f"--test-size={size}", *config, "sh", "-c",
               f'{START_QUEUES}echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
        popen_env = real_start_env()
    proc = subprocess.Popen(cmd, env=popen_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = wait_for_file(uri_file, proc)
    env["FLUX_URI"] = uri
    mode = FluxMode(name, version, uri, env, proc, str(tmp))
    if mode.real:
        mode.scheduler, mode.queues = real_facts(uri)
        mode.configured = bool(config)
        mode.config = read_config(real_config()) if config else {}
        if sched_prefix() and mode.scheduler != "fluxion":
            stop_broker(mode)
            raise RuntimeError(f"{SCHED_PREFIX_ENV}={sched_prefix()}, but the instance "
                               "loaded sched-simple: is that flux-sched built against the "
                               "flux-core on PATH?")
    return mode


def stop_broker(mode: FluxMode) -> None:
    try:
        os.killpg(mode.process.pid, signal.SIGTERM)
        mode.process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(mode.process.pid, signal.SIGKILL)


def _ids(count: int) -> str:
    # An idset: flux R encode reads "0-0" as no ids at all.
    return "0" if count == 1 else f"0-{count - 1}"


def _real_config(tmp: Path, size: int, queues: tuple[str, ...], gpus: int,
                 production: bool) -> Path:
    conf = tmp / "conf"
    conf.mkdir()
    for path in sorted(PRODUCTION.glob("*.toml")) if production else ():
        shutil.copy(path, conf / path.name)
    if queues:
        text = "".join(f"[queues.{name}]\n" for name in queues)
        # A job without a queue goes to the first one, as a site's default does.
        text += f'[policy.jobspec.defaults.system]\nqueue = "{queues[0]}"\n'
        (conf / "queues.toml").write_text(text)
    if gpus:
        R = subprocess.run(["flux", "R", "encode", f"--ranks={_ids(size)}",
                            f"--cores={_ids(os.cpu_count() or 1)}", f"--gpus={_ids(gpus)}"],
                           capture_output=True, text=True, check=True)
        (conf / "R.json").write_text(R.stdout)
        (conf / "resource.toml").write_text(
            f'[resource]\nnoverify = true\npath = "{conf / "R.json"}"\n')
    return conf


@contextlib.contextmanager
def extra_broker(mode: FluxMode, tmp: Path, size: int = 1, queues: tuple[str, ...] = (),
                 gpus: int = 0, list_lag: float = 0.0,
                 production: bool = False) -> Iterator[FluxMode]:
    """A broker of ``mode``'s kind with these properties, stopped afterwards;
    ``production``: configured as PRODUCTION (the double: its queues)."""
    queues = PRODUCTION_QUEUES if production and not mode.real else queues
    tmp.mkdir(parents=True, exist_ok=True)
    uri_file = tmp / "uri"
    body = ["sh", "-c", f'echo "$FLUX_URI" > {uri_file}; exec sleep 100000']
    if mode.real:
        env = real_start_env()  # the session's scheduler; the configuration is the test's
        conf = _real_config(tmp, size, queues, gpus, production)
        if queues or production:  # a test instance's named queues start stopped
            body[2] = f"flux queue start --all --quiet && {body[2]}"
        cmd = ["flux", "start", f"--test-size={size}", f"-o,--config-path={conf}", *body]
    else:
        env = {**os.environ, **mode.env}
        cmd = [sys.executable, "-m", "fluxdouble", f"--test-size={size}",
               f"--rundir={tmp}", f"--gpus-per-node={gpus}", f"--list-lag={list_lag}",
               *[f"--queue={name}" for name in queues], "--", *body]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    extra = FluxMode(mode.name, mode.version, "", {}, proc, str(tmp), mode.scheduler,
                     tuple(sorted(PRODUCTION_QUEUES if production else queues)))
    try:
        extra.uri = wait_for_file(uri_file, proc)
        extra.env = {**mode.env, "FLUX_URI": extra.uri}
        yield extra
    finally:
        stop_broker(extra)


def double_path() -> str:
    """PATH with the double's ``flux`` command first (for ``maestro-flux run``)."""
    return os.pathsep.join([str(TESTS / "fluxdouble" / "bin"), os.environ["PATH"]])


@contextlib.contextmanager
def session_bindings(session: FluxMode) -> Iterator[tuple[Any, Any]]:
    """(the bindings, a handle) of a session's broker, for a module-scoped fixture:
    this process's environment pointed at it meanwhile, and put back after."""
    saved = dict(os.environ)
    os.environ.update(session.env)
    if session.real:
        os.environ.pop(bindings.BINDINGS_ENV, None)
    bindings.bindings.cache_clear()
    try:
        yield bindings.bindings(), bindings.connect(session.uri)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        bindings.bindings.cache_clear()


@contextlib.contextmanager
def pointed_at(mode: FluxMode, monkeypatch: pytest.MonkeyPatch) -> Iterator[FluxMode]:
    """This process pointed at ``mode``'s broker, with no stale bindings or study state."""
    from maestro_flux.maestro.study_state import STUDIES

    monkeypatch.delenv(bindings.BINDINGS_ENV, raising=False)
    monkeypatch.delenv(DOUBLE_VERSION_ENV, raising=False)
    for key, value in mode.env.items():
        monkeypatch.setenv(key, value)
    bindings.bindings.cache_clear()
    STUDIES.clear()
    try:
        yield mode
    finally:
        bindings.bindings.cache_clear()
        STUDIES.clear()
