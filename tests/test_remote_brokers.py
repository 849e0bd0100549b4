"""Reaching the right broker: URI resolution, ssh://, timeouts, broker loss.

Resolver policy tests stub ``bindings.resolve_uri`` (the bindings boundary);
the ``flux_mode`` tests run Flux's resolver and ssh connector (or the double's
copies of them) for real, with a stand-in ``ssh`` that runs the remote command
on this host, so they need no sshd.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from helpers import make_step, wait_for, write_and_submit
from maestrowf.abstracts.enums import JobStatusCode, State, SubmissionCode

from maestro_flux.broker import bindings
from maestro_flux.broker import connection as broker_module
from maestro_flux.broker import uri as uris
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDIES
from maestro_flux.model.errors import BrokerError

HOST = socket.gethostname()
FAKE_SSH = """#!/bin/sh
# Stands in for ssh: logs its arguments, fails while $FAKESSH_DOWN exists,
# else runs the remote command here, as sshd would on HOST.
echo "$@" >> "$FAKESSH_LOG"
while [ $# -gt 0 ]; do case "$1" in -o|-p) shift 2;; -*) shift;; *) break;; esac; done
if [ -e "$FAKESSH_DOWN" ]; then
  echo "ssh: connect to host $1 port 22: Connection refused" >&2; exit 255
fi
shift
echo $$ > "$FAKESSH_PID"
exec "$@"
"""


@pytest.fixture(autouse=True)
def fresh_resolutions():
    STUDIES.clear()
    yield
    STUDIES.clear()


def socket_path(mode) -> str:
    return mode.uri.removeprefix("local://")


def ok(record) -> bool:
    return record.submission_code == SubmissionCode.OK


def submit_one(adapter, tmp_path, cmd="true", name="step"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    step = make_step(name=name, cmd=cmd)
    _, script, _ = adapter.write_script(str(tmp_path), step)
    return adapter.submit(step, script, str(tmp_path))


# -- resolution policy, with the resolver stubbed at the bindings boundary -------------
@pytest.mark.parametrize("uri, scheme, resolve", [
    ("local:///tmp/x/local-0", "local", False), ("ssh://u@h:22/tmp/x", "ssh", False),
    ("jobid:fABC", "jobid", True), ("fABC", "jobid", True), ("f1/f2", "jobid", True),
    ("slurm:1234", "slurm", True), ("lsf:99", "lsf", True), ("pid:42", "pid", True),
])
def test_what_needs_resolving(uri, scheme, resolve):
    assert uris.scheme_of(uri) == scheme
    assert uris.needs_resolving(uri) is resolve


def test_resolution_happens_once_per_process_and_never_at_construction(flux_mode, monkeypatch,
                                                                        tmp_path):
    calls = []
    monkeypatch.setattr(bindings, "resolve_uri", lambda u: calls.append(u) or flux_mode.uri)
    for _ in range(3):
        FluxAdapter(type="flux", flux_uri="slurm:1234")
    assert calls == []
    adapter = FluxAdapter(type="flux", flux_uri="slurm:1234")
    record = submit_one(adapter, tmp_path)
    assert ok(record)
    for _ in range(3):  # three conductor cycles, each with a rebuilt adapter
        FluxAdapter(type="flux", flux_uri="slurm:1234").check_jobs([record.job_identifier])
    assert calls == ["slurm:1234"]


@pytest.mark.parametrize("uri, error, words", [
    ("slurm:1234", FileNotFoundError(2, "No such file or directory: 'squeue'"),
     ["slurm:1234", "squeue", "flux uri --remote slurm:ID"]),
    ("lsf:77", ValueError("LSF Job 77 doesn't seem to have a FLUX_URI"),
     ["lsf:77", "csm_allocation_query", "flux uri --remote lsf:ID"]),
    ("jobid:fNoSuch", ValueError("jobid fNoSuch not found"), ["jobid:fNoSuch", "flux jobs"]),
    ("pid:1", ValueError("PID 1 doesn't seem to have a FLUX_URI"), ["pid:1", "FLUX_URI"]),
])
def test_resolver_failures_are_one_line_naming_the_uri_and_what_to_check(monkeypatch, uri,
                                                                         error, words):
    def fail(_):
        raise error
    monkeypatch.setattr(bindings, "resolve_uri", fail)
    with pytest.raises(BrokerError) as caught:
        uris.resolve(uri)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"cannot resolve flux_uri '{uri}'")
    assert all(word in message for word in words), message


def test_a_failed_resolution_is_retried_next_cycle_not_cached(monkeypatch, flux_mode):
    answers = [ValueError("jobid f1 is not running"), flux_mode.uri]

    def resolver(_):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    monkeypatch.setattr(bindings, "resolve_uri", resolver)
    adapter = FluxAdapter(type="flux", flux_uri="jobid:f1")
    assert adapter.check_jobs(["f1111111"])[1] == {"f1111111": State.NOTFOUND}
    assert adapter.check_jobs(["f1111111"])[1] == {"f1111111": State.UNKNOWN}


def test_schemes_without_a_python_plugin_fall_back_to_the_flux_uri_command(monkeypatch,
                                                                           tmp_path):
    def no_plugin(_):
        raise NotImplementedError("No plugin for URI scheme pbs")
    monkeypatch.setattr(bindings, "resolve_uri", no_plugin)
    fake = tmp_path / "bin" / "flux"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1" = uri ] && echo "ssh://node7/tmp/flux-1/local-0"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    resolution = uris.resolve("pbs:5")
    assert resolution.uri == "ssh://node7/tmp/flux-1/local-0"
    assert resolution.how == "the flux uri command"


def test_resolved_text_is_stripped_and_this_hosts_ssh_uri_becomes_local(monkeypatch, tmp_path):
    here = tmp_path / "local-0"
    here.touch()
    monkeypatch.setattr(bindings, "resolve_uri", lambda u: f"ssh://{HOST}{here}\n")
    assert uris.resolve("lsf:9").uri == f"local://{here}"
    assert uris.prefer_local(f"ssh://elsewhere{here}") == f"ssh://elsewhere{here}"
    assert uris.prefer_local(f"ssh://{HOST}/no/such/socket") == f"ssh://{HOST}/no/such/socket"


# -- resolution through Flux's resolver (or the double's copy), both modes -------------
def test_pid_uri_reaches_the_broker_in_that_process_environment(flux_mode, tmp_path):
    holder = subprocess.Popen(["sleep", "300"], env={**os.environ, "FLUX_URI": flux_mode.uri})
    try:
        adapter = FluxAdapter(type="flux", flux_uri=f"pid:{holder.pid}")
        record = submit_one(adapter, tmp_path)
        assert ok(record)
        assert wait_for(adapter, record.job_identifier) == State.FINISHED
    finally:
        holder.kill()
        holder.wait()


def test_slurm_uri_is_resolved_by_flux_from_scontrol_listpids(flux_mode, tmp_path,
                                                              monkeypatch):
    """Slurm itself cannot run here: a stand-in scontrol answers as Slurm does,
    and Flux's slurm resolver does the rest (pid lookup, remote form)."""
    holder = subprocess.Popen(["sleep", "300"], env={**os.environ, "FLUX_URI": flux_mode.uri})
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text("#!/bin/sh\necho 'PID      JOBID    STEPID   LOCALID GLOBALID'\n"
                        f"echo '{holder.pid} 1234 0 0 0'\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    try:
        resolution = uris.resolve("slurm:1234")
        assert resolution.uri == flux_mode.uri  # ssh://THIS-HOST/... made local
        assert resolution.how == "flux-python's resolver"
        assert ok(submit_one(FluxAdapter(type="flux", flux_uri="slurm:1234"), tmp_path))
    finally:
        holder.kill()
        holder.wait()


def test_jobid_uri_reaches_a_nested_instance(flux_mode, tmp_path):
    """Allocation packing inside a Flux job: a nested instance (what flux batch
    starts) gets a study's steps through jobid:ID."""
    outer = FluxAdapter(type="flux", nested=True)
    # The initial program runs once the nested broker is up (rc1 done, services loaded).
    holder = make_step(name="instance", cmd="touch ready; sleep 300", nodes=1, procs=1)
    jobid, _ = write_and_submit(outer, holder, tmp_path / "outer")
    try:
        _wait_for_file(tmp_path / "outer" / "ready")
        nested_uri = _wait_for_uri(jobid)
        inner = FluxAdapter(type="flux", flux_uri=f"jobid:{jobid}")
        record = submit_one(inner, tmp_path / "inner", cmd='echo "$FLUX_URI" > uri.txt')
        assert ok(record)
        assert wait_for(inner, record.job_identifier) == State.FINISHED
        assert nested_uri.startswith("ssh://")
        assert (tmp_path / "inner" / "uri.txt").read_text().strip() == uris.prefer_local(
            nested_uri)
    finally:
        outer.cancel_jobs([jobid])


def _wait_for_file(path: Path, timeout: float = 60) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.1)


def _wait_for_uri(jobid: str, timeout: float = 60) -> str:
    """The nested instance's URI once its broker is up (the memo comes after rc1)."""
    end = time.time() + timeout
    while True:
        try:
            return bindings.resolve_uri(f"jobid:{jobid}")
        except ValueError:
            if time.time() > end:
                raise
            time.sleep(0.2)


# -- ssh:// --------------------------------------------------------------------------
@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """FLUX_SSH pointing at a stand-in ssh named ``ssh`` (so it gets our options)."""
    folder = tmp_path / "fakessh"
    folder.mkdir()
    program = folder / "ssh"
    program.write_text(FAKE_SSH)
    program.chmod(0o755)
    monkeypatch.setenv("FLUX_SSH", str(program))
    for name in ("LOG", "DOWN", "PID"):
        monkeypatch.setenv(f"FAKESSH_{name}", str(folder / name.lower()))
    return folder


def test_ssh_uri_one_connection_for_many_cycles_with_our_ssh_options(flux_mode, fake_ssh,
                                                                     tmp_path):
    uri = f"ssh://{HOST}{socket_path(flux_mode)}"
    adapter = FluxAdapter(type="flux", flux_uri=uri, connect_timeout=2)
    record = submit_one(adapter, tmp_path)
    assert ok(record)
    for _ in range(5):
        code, states = FluxAdapter(type="flux", flux_uri=uri,
                                   connect_timeout=2).check_jobs([record.job_identifier])
        assert code == JobStatusCode.OK
    assert wait_for(adapter, record.job_identifier) == State.FINISHED
    calls = (fake_ssh / "log").read_text().splitlines()
    assert len(calls) == 1, calls
    assert "-o ConnectTimeout=2 -o BatchMode=yes" in calls[0]
    assert f"{HOST} env PATH=" in calls[0] and calls[0].endswith(f"relay {socket_path(flux_mode)}")
    assert os.environ["FLUX_SSH"] == str(fake_ssh / "ssh")  # restored after connecting


def test_flux_ssh_rcmd_names_the_remote_flux(flux_mode, fake_ssh, tmp_path, monkeypatch):
    flux = "/".join([str(Path(__file__).parent), "fluxdouble", "bin", "flux"])
    if flux_mode.real:
        flux = subprocess.check_output(["sh", "-c", "command -v flux"], text=True).strip()
    rcmd = tmp_path / "remote-flux"
    rcmd.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/rcmd.log\nexec {flux} "$@"\n')
    rcmd.chmod(0o755)
    monkeypatch.setenv("FLUX_SSH_RCMD", str(rcmd))
    adapter = FluxAdapter(type="flux", flux_uri=f"ssh://{HOST}{socket_path(flux_mode)}")
    assert ok(submit_one(adapter, tmp_path))
    assert (tmp_path / "rcmd.log").read_text().split() == ["relay", socket_path(flux_mode)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


needs_ssh = pytest.mark.skipif(not Path("/usr/bin/ssh").exists(),
                               reason="no ssh client (/usr/bin/ssh) to try unreachable hosts")


@needs_ssh
def test_an_unreachable_host_is_an_error_naming_host_and_uri(flux_mode, tmp_path, caplog,
                                                             monkeypatch):
    monkeypatch.setenv("FLUX_SSH", "/usr/bin/ssh")
    port = _free_port()  # nothing listens there
    uri = f"ssh://127.0.0.1:{port}{socket_path(flux_mode)}"
    adapter = FluxAdapter(type="flux", flux_uri=uri)
    assert submit_one(adapter, tmp_path).submission_code == SubmissionCode.ERROR
    assert adapter.check_jobs(["f1111111"]) == (JobStatusCode.OK, {"f1111111": State.NOTFOUND})
    line = next(r.message for r in caplog.records if "not submitted" in r.message)
    assert uri in line and f"on host 127.0.0.1:{port}" in line and "Connection refused" in line
    assert f"ssh -p {port} 127.0.0.1 true" in line


@needs_ssh
def test_a_host_that_never_answers_times_out(flux_mode, tmp_path, monkeypatch):
    monkeypatch.setenv("FLUX_SSH", "/usr/bin/ssh")
    with socket.socket() as silent:  # accepts, never speaks ssh
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        uri = f"ssh://127.0.0.1:{port}{socket_path(flux_mode)}"
        with pytest.raises(BrokerError) as caught:
            broker_module.Broker(uri, timeout=1).handle()
    message = str(caught.value)
    assert "timed out" in message and uri in message
    assert "connect_timeout=1s" in message


def test_broker_loss_keeps_job_ids_and_polling_resumes_when_it_returns(flux_mode, fake_ssh,
                                                                       tmp_path, caplog):
    """The link to the broker drops and stays down for a while (the node is
    unreachable), then comes back: the same job ids are polled to completion."""
    uri = f"ssh://{HOST}{socket_path(flux_mode)}"
    adapter = FluxAdapter(type="flux", flux_uri=uri)
    record = submit_one(adapter, tmp_path, cmd=f"while [ ! -e {tmp_path}/go ]; do sleep 0.1; "
                                               "done")
    jobid = record.job_identifier
    assert wait_for(adapter, jobid, {State.RUNNING}) == State.RUNNING
    (fake_ssh / "down").touch()
    os.kill(int((fake_ssh / "pid").read_text()), 15)  # the relay dies with the link
    for _ in range(2):  # two cycles while the broker is out of reach
        assert adapter.check_jobs([jobid]) == (JobStatusCode.OK, {jobid: State.NOTFOUND})
    assert submit_one(adapter, tmp_path / "b").submission_code == SubmissionCode.ERROR
    outage = [r.message for r in caplog.records if "is unreachable" in r.message]
    assert len(outage) == 1 and uri in outage[0] and "Connection refused" in outage[0]
    (fake_ssh / "down").unlink()
    (tmp_path / "go").touch()
    assert wait_for(adapter, jobid) == State.FINISHED
    assert any("reachable again" in r.message for r in caplog.records)


def test_an_ssh_uri_without_a_path_is_a_clear_error(flux_mode, fake_ssh):
    with pytest.raises(BrokerError) as caught:
        broker_module.Broker("ssh://somehost").handle()
    assert "ssh://somehost" in str(caught.value)


def test_ssh_options_are_left_alone_for_a_non_ssh_flux_ssh(monkeypatch, tmp_path):
    monkeypatch.setenv("FLUX_SSH", "/usr/bin/rsh")
    with broker_module.Broker("ssh://h/tmp/x", 3)._ssh_environment("ssh://h/tmp/x"):
        assert os.environ["FLUX_SSH"] == "/usr/bin/rsh"
    monkeypatch.setenv("FLUX_SSH", "/usr/bin/ssh")
    broker = broker_module.Broker("ssh://h/tmp/x", 2.5)
    with broker._ssh_environment("ssh://h/tmp/x"):
        wrapper_path = os.environ["FLUX_SSH"]
        wrapper = Path(wrapper_path).read_text()
    assert "exec /usr/bin/ssh -o ConnectTimeout=3 -o BatchMode=yes" in wrapper
    assert os.environ["FLUX_SSH"] == "/usr/bin/ssh"
    with broker._ssh_environment("ssh://h/tmp/x"):  # the Broker keeps its one wrapper
        assert os.environ["FLUX_SSH"] == wrapper_path
