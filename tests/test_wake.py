"""The conductor wakes on Flux (maestro/wake.py, broker/events.py): between Maestro's
cycles it waits until a job of the study starts or ends, or a request (``maestro
cancel``) appears, not a whole ``-s``.

The studies run under ``-s 600``: a conductor that slept its whole sleep would take ten
minutes a cycle, far past each test's own timeout; which of the two happened is read
from the conductor's log (one "Checking DAG status" line a cycle), never timed.
"""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path

import pytest
from brokers import TESTS
from helpers import make_step, wait_until, write_and_submit
from test_studies_end_to_end import maestro, statuses, study_env

from maestro_flux.broker import bindings, events, listing
from maestro_flux.broker.connection import Broker
from maestro_flux.maestro import journal as journals
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.wake import Wake
from maestro_flux.model import jobids
from maestro_flux.model.notices import Notices

CHAIN = """description: {name: chain, description: a chain of six levels}
batch: {type: flux}
study:
""" + "".join(f"""  - name: level{n}
    description: level {n}
    run:
      cmd: sleep 1; echo run >> ran
{"" if n == 0 else f"      depends: [level{n - 1}]" + chr(10)}""" for n in range(6))


def cycles(text: str) -> int:
    """Maestro's cycles in a conductor's log (a foreground one logs to its output)."""
    return text.count("Checking DAG status")


def log_of(outdir: Path, name: str) -> str:
    return (outdir / "logs" / f"{name}.log").read_text()


@pytest.mark.e2e
def test_a_chain_under_a_long_sleep_ends_as_flux_ends_it(flux_mode, tmp_path):
    spec = tmp_path / "chain.yaml"
    spec.write_text(CHAIN)
    outdir = tmp_path / "study"
    done = maestro(["run", "-fg", "-y", "-s", "600", "-o", str(outdir), str(spec)],
                   study_env(flux_mode), tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(statuses(outdir).values()) == {"FINISHED"}
    # Flux holds the chain: each level's start and end wake the conductor (which adopts
    # the next level's job, already in Flux), and nothing else does: no busy loop. A
    # conductor sleeping its -s would not have ended within this test's timeout.
    assert 2 <= cycles(done.stdout + done.stderr) <= 2 * 6 + 2


@pytest.mark.e2e
def test_maestro_cancel_is_honoured_at_once_and_no_job_is_left(flux_mode, tmp_path):
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    spec = TESTS / "specs" / "long_chain.yaml"
    assert maestro(["run", "-y", "-s", "600", "-o", str(outdir), str(spec)], env,
                   tmp_path).returncode == 0
    wait_until(lambda: (outdir / "status.csv").exists()
               and statuses(outdir).get("sleeper") == "RUNNING", what="sleeper to run")
    assert maestro(["cancel", "-y", str(outdir)], env, tmp_path).returncode == 0
    wait_until(lambda: set(statuses(outdir).values()) == {"CANCELLED"},
               timeout=90, what="the study to end CANCELLED")
    ids = {jobids.parse_jobid(s.jobid) for s in journals.read(outdir).sent.values()
           if s.jobid}
    handle = bindings.connect(flux_mode.uri)
    wait_until(lambda: all(e["state"] == 64 for e in listing.list_jobs(handle)
                           if e["id"] in ids), timeout=30, what="every job inactive")
    assert cycles(log_of(outdir, "long_chain")) <= 4


@pytest.mark.e2e
def test_status_shows_a_job_running_once_flux_runs_it(flux_mode, tmp_path):
    """The job of 'second' is sent ahead and waits in Flux; once 'first' finishes, Flux
    starts it, and status.csv says RUNNING without a whole sleep going by."""
    spec = tmp_path / "two.yaml"
    spec.write_text("description: {name: two, description: a short step and a long one}\n"
                    "batch: {type: flux}\nstudy:\n"
                    "  - name: first\n    description: short\n    run: {cmd: sleep 2}\n"
                    "  - name: second\n    description: long\n"
                    "    run: {cmd: sleep 60, depends: [first]}\n")
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    assert maestro(["run", "-y", "-s", "600", "-o", str(outdir), str(spec)], env,
                   tmp_path).returncode == 0
    wait_until(lambda: (outdir / "status.csv").exists()
               and statuses(outdir).get("second") == "RUNNING", timeout=90,
               what="status.csv to show 'second' running")
    assert statuses(outdir)["first"] == "FINISHED"
    assert maestro(["cancel", "-y", str(outdir)], env, tmp_path).returncode == 0
    wait_until(lambda: statuses(outdir)["second"] == "CANCELLED", timeout=90,
               what="the cancel")


# -- the watches, in process -------------------------------------------------------------
@pytest.fixture
def adapter(flux_mode):
    return FluxAdapter(type="flux")


def _submit(adapter, tmp_path, cmd):
    jobid, _ = write_and_submit(adapter, make_step(f"w{time.time_ns()}", cmd=cmd), tmp_path)
    return jobids.parse_jobid(jobid)


def _changed_within(watch, ids, running, seconds, since):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if watch.changed(ids, running, 0.25, since):
            return True
    return False


@pytest.mark.every_version
@pytest.mark.parametrize("as_guest", [False, True], ids=["owner", "guest"])
def test_each_watch_sees_a_job_start_and_end(adapter, flux_mode, tmp_path, as_guest,
                                            monkeypatch):
    if as_guest:  # the broker reads a connection without the owner's role as a guest's
        monkeypatch.setenv("FLUX_HANDLE_ROLEMASK", "0x2")
    if as_guest and flux_mode.real:
        pytest.skip("a real broker's guest is tested on a multi-user instance "
                    "(tests/test_guest.py)")
    handle = bindings.connect(flux_mode.uri)
    watch = events.watch_for(handle, guest=as_guest)
    journal = not as_guest and events.journal_available()
    assert isinstance(watch, events.JournalWatch if journal else events.ListingWatch)
    since = time.time()
    jobid = _submit(adapter, tmp_path, "sleep 2")
    assert _changed_within(watch, {jobid}, set(), 30, since)  # it started
    assert _changed_within(watch, {jobid}, {jobid}, 30, since)  # it ended (or ends)
    other = _submit(adapter, tmp_path, "true")
    time.sleep(1.5)
    assert not _changed_within(watch, {jobid + 1_000_000}, set(), 1.5, time.time()), \
        "woken by a job it does not watch"
    watch.close()
    assert other


@pytest.mark.every_version
def test_a_change_read_in_one_wait_wakes_the_next_until_maestro_sees_it(adapter, flux_mode,
                                                                       tmp_path):
    """A job sent ahead can start while the conductor is busy, and its start be read by
    the wait before the cycle that takes it over: the next wait, where Maestro has yet to
    see it run, must still end (seen on real 0.76: status.csv stale for a whole -s)."""
    handle = bindings.connect(flux_mode.uri)
    watch = events.watch_for(handle, guest=False)
    since = time.time()
    jobid = _submit(adapter, tmp_path, "sleep 60")
    assert _changed_within(watch, {jobid}, set(), 30, since)  # the start, read here
    assert _changed_within(watch, {jobid}, set(), 1.5, since)  # Maestro has not seen it
    assert not _changed_within(watch, {jobid}, {jobid}, 1.5, since)  # now it has
    bindings.bindings().job.cancel(handle, jobid)
    assert _changed_within(watch, {jobid}, {jobid}, 30, since)  # inactive
    ended: set[int] = set()
    assert _changed_within(watch, {jobid}, {jobid}, 1.5, since)  # until Maestro polls it
    watch.changed({jobid}, {jobid}, 0.25, since, ended)
    assert ended == {jobid}
    watch.close()


@pytest.mark.every_version
def test_an_end_that_comes_while_the_cycle_runs_the_reactor_still_wakes_the_next_wait(
        adapter, flux_mode, tmp_path):
    """libflux drops a stream's responses read while another caller runs the handle's
    reactor (seen on real 0.76 and 0.88): the wait's journal, on the conductor's one
    handle, lost a job's end when cancel_all ran the reactor, and the conductor slept
    its whole -s. Nothing the cycle does on that handle may drop them."""
    broker = Broker(flux_mode.uri)
    wake = Wake(Notices())
    wake.arm(broker, [tmp_path / "cancel"], [], [], time.time())
    wake.sleep(0.5)  # opens the watch
    jobid = _submit(adapter, tmp_path, "sleep 60")
    code = str(jobid)
    wake.arm(broker, [tmp_path / "cancel"], [code], [], time.time())
    wake.sleep(30)  # ends when the job starts
    assert wake.last == "flux"
    since = time.time()
    broker.cancel({jobid}, "a test's cancel")  # the end comes while it is answered
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # more of a cycle's requests on the same handle
        broker.cancel({jobid}, "a test's cancel")
    wake.arm(broker, [tmp_path / "cancel"], [code], [code], since)
    wake.sleep(60)
    assert wake.last == "flux"  # not "timeout": the end woke it
    wake.close()


def test_a_guest_is_refused_the_journal_and_falls_back_to_job_list(flux_mode,
                                                                   monkeypatch):
    if flux_mode.real:
        pytest.skip("a real broker's guest is tested on a multi-user instance")
    monkeypatch.setenv("FLUX_HANDLE_ROLEMASK", "0x2")
    handle = bindings.connect(flux_mode.uri)
    if events.journal_available():
        with pytest.raises(OSError) as refused:
            events.JournalWatch(handle)
        assert refused.value.errno == errno.EPERM
    assert isinstance(events.watch_for(handle, guest=False), events.ListingWatch)


class Unreachable:
    label = "local:///gone"

    def call(self, operation):
        raise OSError(errno.ECONNREFUSED, "Connection refused")

    def is_guest(self):
        return False


@pytest.mark.unit
def test_a_broker_that_stops_answering_makes_a_plain_sleep_said_once(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    wake = Wake(Notices())
    for _ in range(2):
        wake.arm(Unreachable(), [tmp_path / "cancel"], ["f1111111"], [], time.time())
        started = time.monotonic()
        wake.sleep(0.6)
        assert time.monotonic() - started >= 0.6 and wake.last == "timeout"
    said = [r for r in caplog.records if "cannot watch" in r.message]
    assert len(said) == 1 and "Connection refused" in said[0].message


@pytest.mark.unit
def test_a_request_in_the_study_ends_the_sleep(tmp_path):
    wake = Wake(Notices())
    request = tmp_path / ".cancel.lock"
    wake.arm(Unreachable(), [request], [], [], time.time())
    request.touch()
    wake.sleep(600)
    assert wake.last == "request"


@pytest.mark.unit
def test_an_unarmed_sleep_is_a_plain_sleep():
    wake = Wake(Notices())
    wake.sleep(0.05)
    assert wake.last == "plain"


class Changing:
    """A watch that sees a change at once, every time it is asked."""

    how = "a test's watch"

    def __init__(self) -> None:
        self.asked = 0

    def changed(self, ids, running, timeout, since, ended=None):
        self.asked += 1
        time.sleep(timeout)  # as a real watch waits when nothing new comes
        return True

    def close(self):
        pass


@pytest.mark.unit
def test_a_change_is_acted_on_no_sooner_than_nine_times_the_last_cycles_cost(tmp_path):
    """Thousands of jobs start and end all the time: the conductor must not cycle
    without pause. (A lower bound, which a slow machine only makes longer.)"""
    wake = Wake(Notices())
    wake._watch = Changing()
    wake.arm(Unreachable(), [tmp_path / "cancel"], ["f1111111"], [], time.time(),
             cycle_cost=0.2)
    started = time.monotonic()
    wake.sleep(60)
    assert wake.last == "flux" and time.monotonic() - started >= 0.2 * 9


@pytest.mark.unit
def test_a_request_is_acted_on_at_once_even_within_the_gap(tmp_path):
    wake = Wake(Notices())
    wake._watch = Changing()
    request = tmp_path / "requests" / "cancel-1.json"
    request.parent.mkdir()
    wake.arm(Unreachable(), [request.parent / "cancel-*.json"], [], [], time.time(),
             cycle_cost=30.0)
    request.touch()
    wake.sleep(600)
    assert wake.last == "request"


class Ending(Changing):
    """A watch that sees every watched job end."""

    def changed(self, ids, running, timeout, since, ended=None):
        ended.update(ids)
        return True


@pytest.mark.unit
def test_the_last_watched_jobs_ending_is_acted_on_at_once(tmp_path):
    wake = Wake(Notices())
    wake._watch = Ending()
    wake.arm(Unreachable(), [tmp_path / "cancel"], ["f1111111"], [], time.time(),
             cycle_cost=30.0)  # a gap of minutes, were any watched job left
    wake.sleep(600)
    assert wake.last == "flux"

