"""A guest's study wakes on Flux and is steered in place (issues 25 and 26).

A guest is refused the job manager's journal, so its conductor watches job-list, once a
second: a chain under a long sleep ends as Flux ends it, and ``maestro cancel`` is
honoured at once. ``maestro-flux retry`` runs a fixed branch again as the guest, and
``maestro-flux cancel`` stops one branch of a guest's running study."""

from __future__ import annotations

import time

from test_guest import _statuses
from test_steering import BRANCHES, TWO_BRANCHES, runs
from test_wake import CHAIN, cycles


def test_a_guests_chain_under_a_long_sleep_ends_as_flux_ends_it(guest_side):
    work = guest_side.workdir("wake")
    spec = work / "chain.yaml"
    spec.write_text(CHAIN)
    outdir = work / "out"
    done = guest_side.run([guest_side.command("maestro"), "run", "-fg", "-y", "-s", "600",
                           "-o", str(outdir), str(spec)], cwd=work, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(_statuses(outdir).values()) == {"FINISHED"}
    log = done.stdout + done.stderr
    assert "wakes when a job of the study starts or ends (job-list" in log
    assert 2 <= cycles(log) <= 2 * 6 + 2


def test_a_guests_cancel_is_honoured_at_once(guest_side):
    work = guest_side.workdir("wake-cancel")
    spec = work / "chain.yaml"
    spec.write_text(CHAIN.replace("sleep 1;", "sleep 120;"))
    outdir = work / "out"
    launched = guest_side.run([guest_side.command("maestro"), "run", "-y", "-s", "600",
                               "-o", str(outdir), str(spec)], cwd=work)
    assert launched.returncode == 0, launched.stderr[-3000:]
    end = time.time() + 120
    while time.time() < end and _statuses_or_none(outdir).get("level0") != "RUNNING":
        time.sleep(0.3)
    assert guest_side.run([guest_side.command("maestro"), "cancel", "-y", str(outdir)],
                          cwd=work).returncode == 0
    end = time.time() + 90
    while time.time() < end and set(_statuses(outdir).values()) != {"CANCELLED"}:
        time.sleep(0.3)
    assert set(_statuses(outdir).values()) == {"CANCELLED"}


def _statuses_or_none(outdir) -> dict:
    return _statuses(outdir) if (outdir / "status.csv").exists() else {}


def test_a_guest_retries_a_fixed_branch(guest_side):
    work = guest_side.workdir("retry")
    fixed = work / "fixed"
    spec = work / "branches.yaml"
    spec.write_text(BRANCHES % {"fixed": fixed})
    outdir = work / "out"
    failed = guest_side.run([guest_side.command("maestro"), "run", "-fg", "-y", "-s", "1",
                             "-o", str(outdir), str(spec)], cwd=work)
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert _statuses(outdir)["b"] == "FAILED"
    guest_side.run(["touch", str(fixed)], cwd=work)
    done = guest_side.run([guest_side.command("maestro-flux"), "retry", str(outdir), "-fg",
                           "-s", "1"], cwd=work)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert set(_statuses(outdir).values()) == {"FINISHED"}
    assert runs(outdir) == {"a": 1, "b": 2, "c": 1, "d": 1}


def test_a_guest_cancels_one_branch_and_the_rest_goes_on(guest_side):
    work = guest_side.workdir("cancel-branch")
    spec = work / "two.yaml"
    spec.write_text(TWO_BRANCHES)
    outdir = work / "out"
    launched = guest_side.run([guest_side.command("maestro"), "run", "-y", "-s", "600",
                               "-o", str(outdir), str(spec)], cwd=work)
    assert launched.returncode == 0, launched.stderr[-3000:]
    end = time.time() + 120
    while time.time() < end and _statuses_or_none(outdir).get("slow") != "RUNNING":
        time.sleep(0.3)
    done = guest_side.run([guest_side.command("maestro-flux"), "cancel", str(outdir), "slow"],
                          cwd=work)
    assert done.returncode == 0 and "canceled 2 step(s): slow, below_slow" in done.stdout, \
        done.stdout + done.stderr
    end = time.time() + 120
    while time.time() < end and _statuses(outdir)["below_other"] != "FINISHED":
        time.sleep(0.3)
    assert _statuses(outdir) == {"a": "FINISHED", "slow": "CANCELLED",
                                 "below_slow": "CANCELLED", "other": "FINISHED",
                                 "below_other": "FINISHED"}

