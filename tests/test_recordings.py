"""The bindings (real or double) answer as the recorded broker of their version did.

Each test drives ``bindings.bindings()``, which is ``flux`` in real mode and
``fluxdouble`` in double mode, through the situations recorded in
tests/recordings/VERSION/ and compares the answers with the recording of the
version the mode runs (the double: every recorded version).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from brokers import session_bindings

from maestro_flux.broker import bindings, listing, submit
from maestro_flux.model.jobids import f58_encode, parse_jobid
from maestro_flux.model.states import status_from_listing

pytestmark = pytest.mark.every_version


def spec(flux, command, cwd, duration=None, **kwargs):
    js = flux.job.JobspecV1.from_command(command, **kwargs)
    if duration is not None:
        js.duration = duration  # a setter: from_command takes it only from 0.76 on
    js.cwd = str(cwd)
    js.environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    return js


def wait_inactive(flux, handle, ids, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        jobs = {e["id"]: e for e in listing.list_jobs(handle)}
        if all(jobs.get(i, {}).get("state") == 64 for i in ids):
            return jobs
        time.sleep(0.1)
    raise AssertionError("jobs did not finish in time")


OUTCOMES = {
    "completed": (["/bin/true"], {}),
    "exit3": (["sh", "-c", "exit 3"], {}),
    "not_found": (["no-such-command-xyz"], {}),
    "signal": (["sh", "-c", "kill -TERM $$"], {}),
    "timeout": (["sleep", "30"], {"duration": 1}),
    "canceled_running": (["sleep", "30"], {}),
    "canceled_pending": (["sleep", "30"], {}),
}


@pytest.fixture(scope="module")
def outcomes(flux_session, tmp_path_factory):
    """Run one job per recorded outcome, as record.py did, and list them."""
    with session_bindings(flux_session) as (flux, handle):
        work = tmp_path_factory.mktemp("outcomes")
        ids = {}
        for name, (command, kwargs) in OUTCOMES.items():
            urgency = 0 if name == "canceled_pending" else 16
            ids[name] = submit.submit(handle, spec(flux, command, work, **kwargs), urgency)
        time.sleep(1.5)
        flux.job.cancel(handle, ids["canceled_running"], "stopped by test")
        flux.job.cancel(handle, ids["canceled_pending"])
        listing = wait_inactive(flux, handle, list(ids.values()))
        yield ({name: listing[jobid] for name, jobid in ids.items()}, ids, handle, flux,
               flux_session)


@pytest.mark.parametrize("outcome", sorted(OUTCOMES))
def test_final_state_result_and_returncode_match_recording(outcomes, outcome):
    listing, _, _, _, mode = outcomes
    recorded = mode.recording("final_states")[outcome]
    status = status_from_listing(listing[outcome])
    assert status.state == recorded["state"]
    assert status.result == recorded["result"]
    assert status.returncode == recorded["returncode"]
    assert listing[outcome].get("waitstatus", "") == recorded["waitstatus"]
    assert status.exception_type == (recorded["exception"]["type"] or None)
    note = recorded["exception"]["note"].replace("$HOST", os.uname().nodename)
    assert (status.exception_note or "") == note


def test_raw_listing_has_the_recorded_keys(outcomes):
    listing, _, _, _, mode = outcomes
    raw = {entry["id"]: entry for entry in mode.recording("job_list_raw")["get_jobs"]}
    recorded_by_name = {name: raw[data["to_dict"]["id"]]
                        for name, data in mode.recording("final_states").items()}
    for name, entry in listing.items():
        expected = set(recorded_by_name[name]) - {"name"}
        assert expected <= set(entry), name


@pytest.mark.parametrize("case, call", [
    ("cancel_inactive", lambda f, h, ids: f.job.cancel(h, ids["completed"])),
    ("cancel_unknown", lambda f, h, ids: f.job.cancel(h, 123456789)),
    ("kill_inactive", lambda f, h, ids: f.job.kill(h, ids["completed"])),
])
def test_errors_for_inactive_and_unknown_jobs_match_recording(outcomes, case, call):
    _, ids, handle, flux, mode = outcomes
    recorded = mode.recording("errors")[case]["error"]
    with pytest.raises(OSError) as info:
        call(flux, handle, ids)
    assert type(info.value).__name__ == recorded["type"]
    assert info.value.errno == recorded["errno"]
    assert str(info.value) == recorded["str"]


@pytest.mark.parametrize("case, uri", [
    ("connect_missing_socket", "local:///tmp/no-such-dir/local-0"),
    ("connect_bad_scheme", "nosuch://x"),
])
def test_connection_errors_match_recording(flux_mode, case, uri):
    recorded = flux_mode.recording("errors")[case]["error"]
    with pytest.raises(OSError) as info:
        bindings.connect(uri)
    assert type(info.value).__name__ == recorded["type"]
    assert str(info.value) == recorded["str"]


def test_submit_refusals_match_recording(flux_mode, tmp_path):
    flux = bindings.bindings()
    handle = bindings.connect(flux_mode.uri)
    errors = flux_mode.recording("errors")
    queued = spec(flux, ["true"], tmp_path)
    queued.queue = "no-such-queue"
    for case, jobspec, urgency in (("submit_unknown_queue", queued, 16),
                                   ("submit_urgency_32", spec(flux, ["true"], tmp_path), 32)):
        with pytest.raises(OSError) as info:
            submit.submit(handle, jobspec, urgency)
        assert str(info.value) == errors[case]["error"]["str"], case
    with pytest.raises(ValueError, match=errors["jobspec_client_side_invalid"]["error"]["str"]):
        spec(flux, ["true"], tmp_path, num_tasks=1, num_nodes=64)


def test_unsatisfiable_request_is_accepted_then_fails_with_alloc_exception(flux_mode, tmp_path):
    flux = bindings.bindings()
    handle = bindings.connect(flux_mode.uri)
    flux_mode.as_recorded("an unsatisfiable request's fate")
    recorded = flux_mode.recording("errors")["submit_unsatisfiable"]["after_2s"]
    jobid = submit.submit(handle, spec(flux, ["true"], tmp_path, num_tasks=64, num_nodes=64), 16)
    status = status_from_listing(wait_inactive(flux, handle, [jobid])[jobid])
    assert (status.state, status.result, status.returncode) == (
        recorded["state"], recorded["result"], recorded["returncode"])
    assert status.exception_type == recorded["exception_type"]
    assert status.exception_note == recorded["exception_note"]


def test_jobspec_factories_build_the_recorded_jobspecs(flux_mode):
    JobspecV1 = bindings.bindings().job.JobspecV1
    built = {
        "from_command_1task": JobspecV1.from_command(["/bin/true"]),
        "from_command_4tasks_2nodes_c2": JobspecV1.from_command(
            ["app"], num_tasks=4, num_nodes=2, cores_per_task=2),
        "from_command_gpus": JobspecV1.from_command(["app"], num_tasks=2, gpus_per_task=1),
        "from_command_exclusive": JobspecV1.from_command(
            ["app"], num_tasks=2, num_nodes=2, exclusive=True),
        "from_nest_command": JobspecV1.from_nest_command(
            ["script.sh"], num_slots=4, cores_per_slot=1, num_nodes=2),
        "from_batch_command": JobspecV1.from_batch_command(
            "#!/bin/sh\necho hi\n", "job", num_slots=2, num_nodes=1),
    }
    for js in built.values():
        js.environment = {}
        js.cwd = "/tmp"
    built["from_command_1task"].duration = 600
    built["from_command_1task"].setattr("system.job.name", "named")
    built["from_command_1task"].setattr("user.origin", "yaml")
    built["from_command_1task"].setattr_shell_option("output.stdout.path", "out.{{id}}")
    recorded = flux_mode.recording("jobspecs")
    for name, js in built.items():
        assert json.loads(js.dumps()) == recorded[name], name


def test_job_id_forms_parse_as_recorded(flux_mode):
    forms = flux_mode.recording("jobid_forms")
    number = forms["int"]
    for form in ("dec", "hex", "dothex", "kvs", "f58", "f58plain"):
        assert parse_jobid(forms[form]) == number, form
        assert int(bindings.bindings().job.JobID(forms[form])) == number, form
    assert f58_encode(number, "\u0192") == forms["f58"]
    assert f58_encode(parse_jobid(forms["f58"])) == forms["f58plain"]
    garbage = flux_mode.recording("errors")["jobid_parse_garbage"]["error"]["str"]
    with pytest.raises(ValueError, match=garbage):
        bindings.bindings().job.JobID("not-a-job")


def test_words_form_parses_with_real_bindings(flux_mode):
    if not flux_mode.real:
        pytest.skip("the double does not carry flux-core's mnemonic word list")
    forms = flux_mode.recording("jobid_forms")
    assert parse_jobid(forms["words"], fallback=bindings.parse_jobid) == forms["int"]
