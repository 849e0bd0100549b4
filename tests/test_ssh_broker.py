"""Login-node submission through a real sshd: the test starts its own sshd on a
free loopback port, with a throw-away host key and client key, and a study is
run from outside the instance (no FLUX_URI) with ``flux_uri: ssh://...``.
Skipped, visibly, where sshd is not installed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from brokers import ROOT
from test_studies_end_to_end import maestro, statuses, study_env, with_uri

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH = shutil.which("ssh") or "/usr/bin/ssh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            pytest.skip(f"sshd exited at start: {proc.stderr.read().strip()[-300:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{port}")


@pytest.fixture
def sshd(tmp_path):
    """(port, FLUX_SSH program, sshd process) for an sshd that accepts our throw-away key."""
    if not (os.path.exists(SSHD) and os.path.exists(SSH)):
        pytest.skip("sshd or ssh is not installed (openssh-server, openssh-client)")
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)],
                       check=True)
    shutil.copy(keys / "client.pub", keys / "authorized_keys")
    port = _free_port()
    config = keys / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys}/host\n"
                      f"AuthorizedKeysFile {keys}/authorized_keys\nPasswordAuthentication no\n"
                      "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
                      f"StrictModes no\nUsePAM no\nPidFile {keys}/sshd.pid\n")
    if os.getuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _wait_for_port(port, proc)
    client = tmp_path / "bin" / "ssh"  # named ssh, so maestro-flux adds its options too
    client.parent.mkdir()
    client.write_text(f"#!/bin/sh\nexec {SSH} -i {keys}/client -o StrictHostKeyChecking=no "
                      "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \"$@\"\n")
    client.chmod(0o755)
    yield port, str(client), proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_a_study_from_outside_the_instance_through_ssh(flux_mode, sshd, tmp_path):
    port, client, proc = sshd
    path = flux_mode.uri.removeprefix("local://")
    uri = f"ssh://127.0.0.1:{port}{path}"
    spec = with_uri(ROOT / "specs" / "login_node.yaml", uri, tmp_path)
    env = study_env(flux_mode, FLUX_SSH=client)
    env.pop("FLUX_URI")  # outside the instance: only the batch block names it
    outdir = tmp_path / "study"
    done = maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)], env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(statuses(outdir).values()) == {"FINISHED"}
    where = [p.read_text().split() for p in outdir.glob("where/*/where.txt")]
    assert sorted(w[0] for w in where) == ["1", "2", "3", "4"]
    # each step ran as a job of that instance (FLUX_URI: the rank it ran on)
    assert all(w[2].startswith("local://") for w in where)
    log = done.stderr  # the foreground conductor logs here
    assert log.count(f"connecting to {uri} on host 127.0.0.1:{port}") == 1  # 5 steps, 1 link
    os.killpg(proc.pid, signal.SIGTERM)
    accepted = proc.stderr.read().count("Accepted publickey")
    assert accepted == 1
