"""Login-node submission through a real sshd: the test starts its own sshd on a
free loopback port, with a throw-away host key and client key, and a study is
run from outside the instance (no FLUX_URI) with ``flux_uri: ssh://...``.
Skipped, visibly, where sshd is not installed."""

from __future__ import annotations

import os
import signal

import pytest
from brokers import ROOT
from loopback_sshd import NoSshd, start_sshd
from test_studies_end_to_end import maestro, statuses, study_env, with_uri


@pytest.fixture
def sshd(tmp_path):
    """(port, FLUX_SSH program, sshd process) for an sshd that accepts our throw-away key."""
    try:
        server = start_sshd(tmp_path)
    except NoSshd as why:
        pytest.skip(str(why))
    yield server.port, server.client, server.process
    server.stop()


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
