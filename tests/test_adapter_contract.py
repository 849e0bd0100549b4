"""The adapter against a broker: submit, poll, cancel, in both modes."""

from __future__ import annotations

import errno
import re

import pytest
from helpers import make_step, wait_for, write_and_submit
from maestrowf.abstracts.enums import CancelCode, JobStatusCode, State, SubmissionCode

from maestro_flux.broker import bindings, listing
from maestro_flux.maestro.adapter import FluxAdapter

pytestmark = pytest.mark.every_version
ASCII_F58 = re.compile(r"^f[1-9A-HJ-NP-Za-km-z]+$")


@pytest.fixture
def adapter(flux_mode):
    return FluxAdapter(type="flux")


def test_a_step_runs_to_finished_with_an_ascii_f58_id(adapter, tmp_path):
    jobid, _ = write_and_submit(adapter, make_step(cmd="echo done > out.txt"), tmp_path)
    assert ASCII_F58.match(jobid)
    assert wait_for(adapter, jobid) == State.FINISHED
    assert (tmp_path / "out.txt").read_text() == "done\n"


@pytest.mark.parametrize("cmd, run, expected", [
    ("exit 3", {}, State.FAILED),
    ("no-such-command-xyz", {}, State.FAILED),
    ("sleep 30", {"walltime": "00:00:01"}, State.TIMEDOUT),
])
def test_failures_and_timeouts_map_to_maestro_states(adapter, tmp_path, cmd, run, expected):
    jobid, _ = write_and_submit(adapter, make_step(cmd=cmd, **run), tmp_path)
    assert wait_for(adapter, jobid) == expected


def test_nested_step_runs_launcher_tasks(adapter, tmp_path):
    step = make_step(cmd="$(LAUNCHER) sh -c 'echo task' >> tasks.txt", procs=2, nodes=2)
    jobid, script = write_and_submit(adapter, step, tmp_path)
    assert "flux run -N2 -n2 -c1" in open(script).read()
    assert wait_for(adapter, jobid) == State.FINISHED
    assert (tmp_path / "tasks.txt").read_text() == "task\ntask\n"


def test_output_lands_in_the_workspace_named_by_job_id(adapter, tmp_path):
    jobid, _ = write_and_submit(adapter, make_step(name="talk", cmd="echo out; echo err >&2"),
                                tmp_path)
    wait_for(adapter, jobid)
    assert (tmp_path / f"talk.{jobid}.out").read_text() == "out\n"
    assert (tmp_path / f"talk.{jobid}.err").read_text() == "err\n"


def test_check_jobs_answers_for_every_id_form_with_the_same_keys(adapter, tmp_path):
    jobid, _ = write_and_submit(adapter, make_step(), tmp_path)
    wait_for(adapter, jobid)
    number = bindings.parse_jobid(jobid)
    forms = [jobid, str(number), hex(number), "\u0192" + jobid[1:]]
    code, states = adapter.check_jobs(forms)
    assert code == JobStatusCode.OK
    assert states == {form: State.FINISHED for form in forms}


def test_unknown_and_malformed_ids_are_unknown_not_an_error(adapter):
    code, states = adapter.check_jobs(["f1111111", "not-a-job"])
    assert code == JobStatusCode.OK
    assert states == {"f1111111": State.UNKNOWN, "not-a-job": State.UNKNOWN}


def test_check_jobs_sends_one_request_for_many_ids(adapter, tmp_path, monkeypatch):
    ids = [write_and_submit(adapter, make_step(name=f"s{i}", cmd="true"), tmp_path / str(i))[0]
           for i in range(20)]
    calls = []
    real_list = listing.list_jobs
    monkeypatch.setattr(listing, "list_jobs",
                        lambda h, since=0.0: calls.append(since) or real_list(h, since))
    code, states = adapter.check_jobs(ids)
    assert code == JobStatusCode.OK and set(states) == set(ids)
    assert len(calls) == 1
    # A rebuilt adapter shares the process's bookkeeping: jobs already seen to end are
    # not asked about again, so a second poll costs one request, or none at all.
    all_ended = set(states.values()) <= {State.FINISHED}
    FluxAdapter(type="flux").check_jobs(ids)
    assert len(calls) == (1 if all_ended else 2)


def test_cancel_running_and_pending_jobs_in_one_pass(adapter, tmp_path):
    running, _ = write_and_submit(adapter, make_step(name="run", cmd="sleep 30"), tmp_path / "a")
    held, _ = write_and_submit(adapter, make_step(name="held", cmd="sleep 30", priority="held"),
                               tmp_path / "b")
    wait_for(adapter, running, {State.RUNNING})
    record = adapter.cancel_jobs([running, held])
    assert record.cancel_status == CancelCode.OK
    assert record.lookup_status(CancelCode.OK) == {running, held}
    assert wait_for(adapter, running) == State.CANCELLED
    assert wait_for(adapter, held) == State.CANCELLED


def test_cancel_is_idempotent_on_finished_jobs_and_empty_lists(adapter, tmp_path):
    jobid, _ = write_and_submit(adapter, make_step(cmd="true"), tmp_path)
    wait_for(adapter, jobid)
    record = adapter.cancel_jobs([jobid])
    assert record.cancel_status == CancelCode.OK
    assert record.lookup_status(CancelCode.OK) == {jobid}
    empty = adapter.cancel_jobs([])
    assert empty.cancel_status == CancelCode.OK and empty.return_code == 0


def test_cancel_accepts_every_id_form(adapter, tmp_path):
    ids = [write_and_submit(adapter, make_step(name=f"h{i}", cmd="true", priority="held"),
                            tmp_path / str(i))[0] for i in range(4)]
    numbers = [bindings.parse_jobid(jobid) for jobid in ids]
    forms = [ids[0], str(numbers[1]), hex(numbers[2]), "\u0192" + ids[3][1:]]
    record = adapter.cancel_jobs(forms)
    assert record.cancel_status == CancelCode.OK
    assert record.lookup_status(CancelCode.OK) == set(forms)
    assert [wait_for(adapter, jobid) for jobid in ids] == [State.CANCELLED] * 4


def test_cancel_of_an_unknown_id_is_reported_per_id(adapter):
    record = adapter.cancel_jobs(["f1111111"])
    assert record.cancel_status == CancelCode.ERROR
    assert record.lookup_status(CancelCode.ERROR) == {"f1111111"}


def test_held_step_stays_pending(adapter, tmp_path):
    jobid, _ = write_and_submit(adapter, make_step(cmd="true", priority="held"), tmp_path)
    assert adapter.check_jobs([jobid])[1][jobid] in (State.PENDING, State.QUEUED)
    adapter.cancel_jobs([jobid])


def test_job_environment_leaves_out_secrets(adapter, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_API_TOKEN", "s3cret")
    monkeypatch.setenv("HARMLESS_SETTING", "kept")
    jobid, _ = write_and_submit(adapter, make_step(cmd="env > env.txt"), tmp_path)
    wait_for(adapter, jobid)
    env = (tmp_path / "env.txt").read_text()
    assert "HARMLESS_SETTING=kept" in env
    assert "s3cret" not in env


def test_refused_submission_is_an_error_record_with_the_brokers_reason(flux_mode, tmp_path,
                                                                      caplog):
    # portable: false submits the queue although this broker has no named queues.
    adapter = FluxAdapter(type="flux", queue="no-such-queue", portable=False)
    step = make_step()
    _, script, _ = adapter.write_script(str(tmp_path), step)
    record = adapter.submit(step, script, str(tmp_path))
    assert record.submission_code == SubmissionCode.ERROR
    assert "'no-such-queue' is not a valid queue" in caplog.text


def test_an_unreachable_broker_never_raises_into_the_conductor(tmp_path, caplog, flux_mode):
    uri = f"local://{tmp_path}/gone/local-0"
    adapter = FluxAdapter(type="flux", flux_uri=uri)
    step = make_step()
    _, script, _ = adapter.write_script(str(tmp_path), step)
    assert adapter.submit(step, script, str(tmp_path)).submission_code == SubmissionCode.ERROR
    assert uri in caplog.text
    code, states = adapter.check_jobs(["f1111111"])
    assert code == JobStatusCode.OK and states == {"f1111111": State.NOTFOUND}
    assert adapter.cancel_jobs(["f1111111"]).cancel_status == CancelCode.ERROR


def test_connection_is_reopened_once_when_lost(adapter, tmp_path, monkeypatch):
    jobid, _ = write_and_submit(adapter, make_step(cmd="true"), tmp_path)
    real_list = listing.list_jobs
    failures = [OSError(errno.ECONNRESET, "Connection reset by peer")]

    def flaky(handle, since=0.0):
        if failures:
            raise failures.pop()
        return real_list(handle, since)

    connects = []
    real_connect = bindings.connect
    monkeypatch.setattr(listing, "list_jobs", flaky)
    monkeypatch.setattr(bindings, "connect", lambda uri: connects.append(uri) or real_connect(uri))
    assert wait_for(adapter, jobid) == State.FINISHED
    assert len(connects) == 1
