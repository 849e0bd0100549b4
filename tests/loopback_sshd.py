"""A throw-away sshd on a free loopback port, with its own host key and one client
key, for ``ssh://`` brokers (tests/test_ssh_broker.py, benchmarks --ssh)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH = shutil.which("ssh") or "/usr/bin/ssh"


class NoSshd(Exception):
    """sshd cannot run here (the message says why)."""


@dataclass
class Sshd:
    port: int
    client: str  # an ``ssh`` wrapper with the client key, for FLUX_SSH
    process: subprocess.Popen

    def uri(self, local_uri: str) -> str:
        """The ssh:// URI of a local:// broker of this host, through this sshd."""
        return f"ssh://127.0.0.1:{self.port}{local_uri.removeprefix('local://')}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise NoSshd(f"sshd exited at start: {proc.stderr.read().strip()[-300:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise NoSshd(f"sshd did not listen on 127.0.0.1:{port}")


def start_sshd(folder: Path) -> Sshd:
    """An sshd that accepts the throw-away client key; NoSshd where it cannot run."""
    if not (os.path.exists(SSHD) and os.path.exists(SSH)):
        raise NoSshd("sshd or ssh is not installed (openssh-server, openssh-client)")
    keys = folder / "keys"
    keys.mkdir(parents=True)
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
    client = folder / "bin" / "ssh"  # named ssh, so maestro-flux adds its options too
    client.parent.mkdir()
    client.write_text(f"#!/bin/sh\nexec {SSH} -i {keys}/client -o StrictHostKeyChecking=no "
                      "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \"$@\"\n")
    client.chmod(0o755)
    return Sshd(port, str(client), proc)
