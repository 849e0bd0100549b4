"""Where the guest tests run: a guest of the test double, and a guest of a real
multi-user Flux instance.

The real one is what production machines have: an instance owned by an
unprivileged user, ``access.allow-guest-user = true``, jobs signed with
flux-security (munge) and run by the setuid IMP as the user who submitted them.
It is started when MAESTRO_FLUX_MULTIUSER_PREFIX names a flux-core built with
flux-security and the two users of MAESTRO_FLUX_MULTIUSER_USERS (``owner:guest``,
default ``fluxowner:fluxguest``) exist, and the IMP's configuration lets the owner run
jobs (``exec.allowed-users``); this process must be root, to act as them.
Otherwise it is skipped, with the reason. It is configured as production systems
are (tests/flux-config/production/: named queues, a default queue, and under Fluxion,
which MAESTRO_FLUX_SCHED_PREFIX selects as for the real mode, node-exclusive matching).

The guest cannot read this process's Python, so once per session a virtualenv is
made in a world-readable temporary directory, on MAESTRO_FLUX_GUEST_PYTHON
(default /usr/bin/python3), with maestro-flux installed from this tree as users
install it (the registration shim inside maestrowf), flux-python of the prefix's
version, and ply. Everything a guest test does runs as the guest, through
``tests/guest_actions.py`` or the ``maestro``/``maestro-flux`` commands.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from brokers import (
    PRODUCTION,
    ROOT,
    SCHED_VARIABLES,
    START_QUEUES,
    TESTS,
    real_start_env,
    sched_prefix,
    wait_for_file,
)

from maestro_flux.broker import bindings

PREFIX_ENV = "MAESTRO_FLUX_MULTIUSER_PREFIX"
USERS_ENV = "MAESTRO_FLUX_MULTIUSER_USERS"
IMP_ENV = "MAESTRO_FLUX_IMP"
#: The IMP's configuration directory, where it is not PREFIX/etc/flux/imp/conf.d or
#: /etc/flux/imp/conf.d (PREFIX: flux-security's, beside its libexec/flux/flux-imp).
IMP_CONF_ENV = "MAESTRO_FLUX_IMP_CONF"
GUEST_PYTHON_ENV = "MAESTRO_FLUX_GUEST_PYTHON"
ACTIONS = TESTS / "guest_actions.py"


def users() -> tuple[str, str]:
    owner, _, guest = os.environ.get(USERS_ENV, "fluxowner:fluxguest").partition(":")
    return owner, guest


def _flux_version(prefix: Path) -> dict[str, str]:
    done = subprocess.run([str(prefix / "bin" / "flux"), "version"], capture_output=True,
                          text=True, env=dict(os.environ, LD_LIBRARY_PATH=str(prefix / "lib")))
    return dict(re.findall(r"(?m)^([\w-]+):\s+(\S+)", done.stdout))


def security_lib(prefix: Path) -> Path | None:
    """The directory of the libflux-security that the prefix's flux was linked with."""
    done = subprocess.run(["ldd", str(prefix / "bin" / "flux")], capture_output=True, text=True,
                          env=dict(os.environ, LD_LIBRARY_PATH=str(prefix / "lib")))
    found = re.search(r"libflux-security\.so\S* => (\S+)", done.stdout)
    return Path(found.group(1)).parent if found else None


def imp_path(prefix: Path) -> Path | None:
    """MAESTRO_FLUX_IMP, else the IMP installed beside that libflux-security."""
    if os.environ.get(IMP_ENV):
        return Path(os.environ[IMP_ENV])
    lib = security_lib(prefix)
    return lib.parent / "libexec" / "flux" / "flux-imp" if lib else None


def imp_conf_dir(imp: Path) -> Path:
    """Where the IMP reads its TOML configuration: MAESTRO_FLUX_IMP_CONF, else its
    prefix's etc/flux/imp/conf.d if that exists, else the system one."""
    if os.environ.get(IMP_CONF_ENV):
        return Path(os.environ[IMP_CONF_ENV])
    beside = imp.parents[2] / "etc" / "flux" / "imp" / "conf.d"  # PREFIX/libexec/flux/flux-imp
    return beside if beside.is_dir() else Path("/etc/flux/imp/conf.d")


def imp_refuses(owner: str, conf: Path) -> str | None:
    """Why the IMP will not run jobs for the instance owner (exec.allowed-users), or None.

    An IMP that does not list the owner makes every guest job exit 1, with nothing said;
    here that is a missing prerequisite, named.
    """
    files = sorted(conf.glob("*.toml"))
    if not files:
        return (f"no real multi-user instance: no IMP configuration (*.toml) in {conf}, so "
                f"the IMP runs no jobs for {owner!r} ({IMP_CONF_ENV})")
    allowed: set[str] = set()
    for path in files:
        try:
            with open(path, "rb") as handle:
                allowed |= set(tomllib.load(handle).get("exec", {}).get("allowed-users", []))
        except (OSError, tomllib.TOMLDecodeError) as err:
            return f"no real multi-user instance: cannot read the IMP's {path}: {err}"
    if owner in allowed:
        return None
    where = ", ".join(str(path) for path in files)
    return (f"no real multi-user instance: the IMP will not run jobs for the instance owner "
            f"{owner!r}: exec.allowed-users in {where} is {sorted(allowed)}")


def why_not() -> str | None:
    """Why the real multi-user instance cannot run here, or None if it can."""
    named = os.environ.get(PREFIX_ENV)
    if not named:
        return (f"no real multi-user instance: {PREFIX_ENV} does not name a flux-core "
                "built with flux-security (see tests/multiuser.py)")
    prefix = Path(named)
    if not (prefix / "bin" / "flux").exists():
        return f"no real multi-user instance: {prefix}/bin/flux does not exist"
    if "libflux-security" not in _flux_version(prefix):
        return f"no real multi-user instance: {prefix} was built without flux-security"
    if os.geteuid() != 0:
        return "no real multi-user instance: acting as its owner and guest needs root"
    for user in users():
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"no real multi-user instance: user {user!r} does not exist ({USERS_ENV})"
    imp = imp_path(prefix)
    if imp is None or not imp.exists() or not imp.stat().st_mode & stat.S_ISUID:
        return f"no real multi-user instance: no setuid flux-imp at {imp} ({IMP_ENV})"
    refused = imp_refuses(users()[0], imp_conf_dir(imp))
    if refused:
        return refused
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        return "no real multi-user instance: munge cannot sign (is munged running?)"
    python = os.environ.get(GUEST_PYTHON_ENV, "/usr/bin/python3")
    if not os.access(python, os.X_OK):
        return f"no real multi-user instance: no {python} for the guest ({GUEST_PYTHON_ENV})"
    return None


@dataclass
class GuestSide:
    """A broker whose instance owner is someone else, and how to act as its guest.

    ``name`` is "double" or "multiuser". ``run`` runs a command as the guest (or,
    with ``as_owner``, as the instance owner) with FLUX_URI pointing at the broker;
    ``action`` runs one of tests/guest_actions.py's actions and returns its answer.
    """

    name: str
    uri: str
    guest: pwd.struct_passwd
    owner_uid: int
    scheduler: str
    version: str
    tmp: Path
    _env: dict = field(default_factory=dict)
    _owner_env: dict = field(default_factory=dict)
    _actions: Path = ACTIONS
    _python: str = sys.executable
    _bin: Path = Path(sys.executable).parent
    _process: subprocess.Popen | None = None

    @property
    def real(self) -> bool:
        return self.name == "multiuser"

    def workdir(self, name: str) -> Path:
        """A new directory the guest owns."""
        path = self.tmp / "work" / name
        path.mkdir(parents=True)
        os.chown(path, self.guest.pw_uid, self.guest.pw_gid)
        return path

    def _argv(self, argv: list[str], as_owner: bool, extra: dict) -> tuple[list[str], dict]:
        env = {**(self._owner_env if as_owner else self._env), **extra}
        if not self.real:
            return argv, {**os.environ, **env}
        user = pwd.getpwuid(self.owner_uid).pw_name if as_owner else self.guest.pw_name
        return (["runuser", "-u", user, "--", "env", "-i",
                 *[f"{k}={v}" for k, v in env.items()], *argv], {})

    def run(self, argv: list[str], cwd: Path | None = None, as_owner: bool = False,
            timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
        args, env = self._argv(argv, as_owner, extra)
        return subprocess.run(args, cwd=cwd or self.tmp, env=env or None, text=True,
                              capture_output=True, timeout=timeout)

    def command(self, name: str) -> str:
        """A console script of the guest's maestro-flux installation."""
        return str(self._bin / name)

    def action(self, name: str, *args: str, as_owner: bool = False,
               cwd: Path | None = None) -> dict:
        done = self.run([self._python, str(self._actions), name, *args], cwd=cwd,
                        as_owner=as_owner)
        if done.returncode != 0:
            raise AssertionError(f"guest action {name} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def start_double(tmp: Path, version: str) -> GuestSide:
    """A double broker owned by another uid, so that this process is its guest."""
    env = {bindings.BINDINGS_ENV: "fluxdouble", "FLUXDOUBLE_VERSION": version,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS),
                                                       os.environ.get("PYTHONPATH")]))}
    owner = os.getuid() + 1
    me = pwd.getpwuid(os.getuid())
    env.update(HOME=me.pw_dir, USER=me.pw_name, LOGNAME=me.pw_name)
    proc = subprocess.Popen([sys.executable, "-m", "fluxdouble", f"--rundir={tmp}",
                             f"--owner={owner}", "--test-size=2"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    uri = proc.stdout.readline().strip()
    env["FLUX_URI"] = uri
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    # The double credits a connection to FLUXDOUBLE_USERID, standing in for the
    # peer credentials of another user's process.
    owner_env = {**env, "FLUXDOUBLE_USERID": str(owner)}
    return GuestSide("double", uri, me, owner, "double", version,
                     tmp, env, owner_env, _process=proc)


def _guest_venv(tmp: Path, version: str) -> Path:
    """A virtualenv every user can run: maestro-flux from this tree, flux-python, ply."""
    venv = tmp / "venv"
    python = os.environ.get(GUEST_PYTHON_ENV, "/usr/bin/python3")
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    build = tmp / "src"  # pip builds in a copy; the tree itself may not be readable
    shutil.copytree(ROOT, build, ignore=shutil.ignore_patterns(
        ".git", ".tox", ".venv", ".ci-venvs", "__pycache__", "*.egg-info", "build", "site"))
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(build),
                           f"flux-python=={version}", "ply"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cannot make the guest's virtualenv: {done.stderr[-2000:]}")
    shutil.rmtree(build)
    return venv


def _instance_config(tmp: Path, imp: Path) -> Path:
    conf = tmp / "conf"
    conf.mkdir()
    (conf / "multiuser.toml").write_text(
        "[access]\nallow-guest-user = true\nallow-root-owner = false\n"
        f'[exec]\nimp = "{imp}"\n')
    return conf


def start_multiuser(tmp: Path) -> GuestSide:
    """A real ``flux start --test-size=2`` owned by the owner user, with guests allowed."""
    prefix = Path(os.environ[PREFIX_ENV])
    version = _flux_version(prefix)["libflux-core"]
    owner, guest = (pwd.getpwnam(name) for name in users())
    os.chmod(tmp, 0o755)
    venv = _guest_venv(tmp, version)
    conf = _instance_config(tmp, imp_path(prefix))
    for path in sorted(PRODUCTION.glob("*.toml")):  # as production systems are configured
        shutil.copy(path, conf / path.name)
    # The owner writes the URI here; the guest's socket directory is opened up by the
    # initial program (flux start makes it 0700).
    ownerdir = tmp / "owner"
    ownerdir.mkdir()
    os.chown(ownerdir, owner.pw_uid, owner.pw_gid)
    (tmp / "work").mkdir(mode=0o755)
    lib = os.pathsep.join(filter(None, [str(prefix / "lib"), str(security_lib(prefix) or "")]))
    base = {"PATH": f"{venv / 'bin'}:{prefix / 'bin'}:/usr/bin:/bin", "LD_LIBRARY_PATH": lib,
            "LANG": "C.UTF-8"}
    sched = {k: v for k, v in real_start_env({}).items() if k in SCHED_VARIABLES}

    def user_env(entry: pwd.struct_passwd) -> dict:
        return {**base, "HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}

    uri_file = ownerdir / "uri"
    body = (f'chmod 755 "$(dirname "${{FLUX_URI#local://}}")" && {START_QUEUES}'
            f'echo "$FLUX_URI" > {uri_file}; exec sleep 100000')
    argv = ["runuser", "-u", owner.pw_name, "--", "env", "-i",
            *[f"{k}={v}" for k, v in {**user_env(owner), **sched}.items()],
            str(prefix / "bin" / "flux"), "start", "--test-size=2",
            f"-o,--config-path={conf}", "sh", "-c", body]
    proc = subprocess.Popen(argv, cwd=ownerdir, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = wait_for_file(uri_file, proc)
    env = {**user_env(guest), "FLUX_URI": uri}
    owner_env = {**user_env(owner), "FLUX_URI": uri}
    actions = tmp / "guest_actions.py"
    shutil.copy(ACTIONS, actions)
    modules = subprocess.run(["runuser", "-u", guest.pw_name, "--", "env", "-i",
                              *[f"{k}={v}" for k, v in env.items()], "flux", "module", "list"],
                             capture_output=True, text=True).stdout
    scheduler = "fluxion" if "sched-fluxion-qmanager" in modules else "sched-simple"
    side = GuestSide("multiuser", uri, guest, owner.pw_uid, scheduler, version, tmp, env,
                     owner_env, actions, str(venv / "bin" / "python"), venv / "bin", proc)
    if sched_prefix() and scheduler != "fluxion":
        stop(side)
        raise RuntimeError(f"the multi-user instance loaded {scheduler}, not Fluxion from "
                           f"{sched_prefix()}")
    return side


def setting(side: GuestSide) -> str:
    """How a real guest side is set up, in words (the "setting" of guest_rpcs.json)."""
    security = _flux_version(Path(os.environ[PREFIX_ENV])).get("libflux-security", "?")
    return (f"flux-core {side.version} built with flux-security {security}; a multi-user "
            "instance as tests/multiuser.py starts it (flux start --test-size=2 owned by an "
            "unprivileged user, access.allow-guest-user = true, exec.imp set, munge signing, "
            f"tests/flux-config/production, {side.scheduler}); the caller is a guest (another "
            "unprivileged user) who has submitted one job of its own ('true') just before, "
            "and the owner one; $OWNER_UID is the owner's uid. Recorded by tests/test_guest.py "
            "(tests/guest_actions.py 'requests' and 'streams') with MAESTRO_FLUX_RECORD=1")


def stop(side: GuestSide) -> None:
    proc = side._process
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
