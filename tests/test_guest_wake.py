"""The conductor wakes on Flux for a guest too (maestro/wake.py): a guest is refused the
job manager's journal, so it watches job-list, once a second; a chain under a long
sleep ends as Flux ends it, and ``maestro cancel`` is honoured at once."""

from __future__ import annotations

import time

from test_guest import _statuses
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
