"""Production specs run unchanged wherever they land (issue 11).

A queue the broker lacks is dropped where it has no named queues (one warning
per study) and refuses the step, listing the queues, where it has others; the
lookup works for a guest and is made once per study; a bank stays in the jobspec.
"""

from __future__ import annotations

import json
import logging
import os
import time

import pytest
from brokers import FLUXION_ANSWERS_GUESTS, TESTS, double_path, extra_broker
from helpers import make_step, wait_for, write_and_submit
from maestrowf.abstracts.enums import State, SubmissionCode
from test_cli import cli
from test_header_matches_jobspec import read_header
from test_studies_end_to_end import BIN, maestro, statuses, study_env

from maestro_flux.broker import bindings
from maestro_flux.broker import connection as broker_module
from maestro_flux.broker import queues as queue_lookup
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDIES

PRODUCTION = TESTS / "specs" / "production.yaml"
DROPPED = "queue 'pdebug' dropped from every step that asks for it"


def submitted_jobspec(adapter, step, tmp_path) -> tuple[str, dict, str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    _, script, _ = adapter.write_script(str(tmp_path), step)
    jobspec, _, _ = adapter.planner.jobspec(step, script, str(tmp_path))
    return script, json.loads(jobspec.dumps()), open(script).read()


# -- the lookup ------------------------------------------------------------------
@pytest.mark.every_version
def test_guest_requests_are_answered_as_recorded(flux_mode, monkeypatch):
    """FLUX_HANDLE_ROLEMASK=2 makes this connection a guest's, on the real broker too;
    each version answers as its real multi-user instance answered a guest."""
    monkeypatch.setenv("FLUX_HANDLE_ROLEMASK", "0x2")
    recorded = flux_mode.recording("guest_rpcs")["answers"]
    handle = bindings.connect(flux_mode.uri)
    for topic, payload in (("job-manager.jobtap", {"query_only": True}),
                           ("sched.resource-status", None), ("job-manager.queue-status", None),
                           ("job-manager.queue-list", None), ("resource.status", None)):
        if flux_mode.scheduler == "fluxion" and topic in FLUXION_ANSWERS_GUESTS:
            assert "all" in handle.rpc(topic, payload).get(), topic  # R of every resource
        elif "error" in recorded[topic]:
            with pytest.raises(OSError) as info:
                handle.rpc(topic, payload).get()
            assert str(info.value) == recorded[topic]["error"], topic
        else:  # as tests/guest_actions.py records an answer: its keys
            assert f"keys {sorted(handle.rpc(topic, payload).get())}" == recorded[topic][
                "ok"], topic
    # the test instance's whole configuration
    assert handle.rpc("config.get").get() == flux_mode.config
    assert queue_lookup.lookup_queues(handle).describe() == "none configured (one anonymous queue)"
    accounting, how = queue_lookup.accounting(handle)
    assert accounting is None
    assert how.startswith("job-manager.jobtap refused (Request requires owner credentials: "
                          "a guest cannot ask it)")


def test_queues_are_looked_up_once_per_study_and_never_at_construction(flux_mode, tmp_path,
                                                                       monkeypatch):
    asked = []
    real_lookup = queue_lookup.lookup_queues
    monkeypatch.setattr(queue_lookup, "lookup_queues",
                        lambda handle: asked.append(1) or real_lookup(handle))
    batch = {"type": "flux", "queue": "pdebug", "bank": "guests"}
    built = FluxAdapter(**batch)
    assert asked == [] and built.study.broker(flux_mode.uri)._handle is None
    for number in range(3):  # three steps, as three cycles rebuild the adapter
        step = make_step(name=f"s{number}")
        _, jobspec, text = submitted_jobspec(FluxAdapter(**batch), step, tmp_path / str(number))
        assert "queue" not in jobspec["attributes"]["system"]
        assert jobspec["attributes"]["system"]["bank"] == "guests"
        assert "#flux: --queue" not in text and "#flux: --bank=guests" in text
        assert f"# maestro-flux: queue 'pdebug' dropped: {flux_mode.uri} has no named queues" \
            in text
    assert asked == [1]


TEMPLATE = "#!/bin/sh\n#flux: --queue=from-template\n{{ maestro_command }}\n"


@pytest.mark.parametrize("layer", ["step-profile", "batch", "template"])
def test_a_queue_from_any_layer_is_dropped_with_one_warning(flux_mode, tmp_path, caplog, layer):
    (tmp_path / "t.sh.j2").write_text(TEMPLATE)
    batch = {"step-profile": {"profiles": {"p": {"queue": "from-profile"}}, "steps": {"*": "p"}},
             "batch": {"queue": "from-batch"},
             "template": {"file": str(tmp_path / "t.sh.j2")}}[layer]
    queue = {"step-profile": "from-profile", "batch": "from-batch",
             "template": "from-template"}[layer]
    caplog.set_level(logging.WARNING)
    adapter = FluxAdapter(type="flux", **batch)
    for number in range(2):
        step = make_step(name=f"s{number}", cmd="true")
        jobid, script = write_and_submit(adapter, step, tmp_path / str(number))
        assert read_header(open(script).read()).queue is None
        assert wait_for(adapter, jobid) == State.FINISHED
    warnings = [r.getMessage() for r in caplog.records if "dropped from every step" in
                r.getMessage()]
    assert warnings == [f"maestro-flux: queue '{queue}' dropped from every step that asks for "
                        f"it: {flux_mode.uri} has no named queues (set batch.portable: false "
                        "to keep it)"]


def test_named_queues_refuse_a_misspelt_queue_listing_them(flux_mode, tmp_path, caplog,
                                                           monkeypatch):
    with extra_broker(flux_mode, tmp_path / "broker", queues=("pdebug", "pbatch")) as named:
        monkeypatch.setenv("FLUX_URI", named.uri)
        STUDIES.clear()
        step = make_step(cmd="true")
        wrong = FluxAdapter(type="flux", queue="pdebugg", portable=True)
        _, script, _ = wrong.write_script(str(tmp_path), step)
        line = (f"queue 'pdebugg' does not exist on {named.uri}; its queues are: pbatch, "
                "pdebug")
        assert f"this step cannot be submitted: step 'step': {line}" in open(script).read()
        assert wrong.submit(step, script, str(tmp_path)).submission_code == SubmissionCode.ERROR
        assert f"maestro-flux: step 'step' was not submitted: {line}" in caplog.text
        right = FluxAdapter(type="flux", queue="pdebug", bank="guests")
        jobid, script = write_and_submit(right, make_step(name="ok", cmd="true"),
                                         tmp_path / "ok")
        assert read_header(open(script).read()).queue == "pdebug"
        assert wait_for(right, jobid) == State.FINISHED
        STUDIES.clear()


# -- whole studies -------------------------------------------------------------
def log_lines(text: str, words: str) -> list[str]:
    return [line for line in text.splitlines() if words in line]


def test_production_spec_finishes_in_maestro_flux_runs_private_instance(flux_mode, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FLUX_URI"}
    env.update(flux_mode.env)
    env.pop("FLUX_URI")
    env["PATH"] = f"{BIN}{os.pathsep}{double_path() if not flux_mode.real else env['PATH']}"
    env["FLUX_DOUBLE_PYTHON"] = str(BIN / "python")
    # --private: a system instance on this machine (a site's, or a test's) is left alone.
    done = cli("run", "--private", str(PRODUCTION), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting a private Flux instance of 1 broker(s)" in done.stderr
    assert set(statuses(next(tmp_path.glob("production_*"))).values()) == {"FINISHED"}
    assert len(log_lines(done.stderr, DROPPED)) == 1, done.stderr[-3000:]


def test_production_spec_finishes_in_an_instance_started_inside_a_job(flux_mode, tmp_path):
    """``flux batch`` of a script that runs the study: the instance it starts has no queues."""
    outdir = tmp_path / "study"
    script = (f"#!/bin/sh\nexec {BIN / 'maestro'} run -fg -y -s 1 -o {outdir} {PRODUCTION} "
              f"> {tmp_path / 'maestro.log'} 2>&1\n")
    flux = bindings.bindings()
    # from_batch_command: every supported flux-python has it (from_batch came in 0.84).
    jobspec = flux.job.JobspecV1.from_batch_command(script, "inside", num_slots=2)
    jobspec.cwd = str(tmp_path)
    jobspec.environment = {k: v for k, v in study_env(flux_mode).items() if k != "FLUX_URI"}
    adapter = FluxAdapter(type="flux")
    handle = bindings.connect(flux_mode.uri)
    jobid = flux.job.submit(handle, jobspec)
    assert wait_for(adapter, f"{int(jobid)}", timeout=300) == State.FINISHED, \
        (tmp_path / "maestro.log").read_text()[-3000:]
    log = (tmp_path / "maestro.log").read_text()
    assert set(statuses(outdir).values()) == {"FINISHED"}, log[-3000:]
    assert len(log_lines(log, DROPPED)) == 1, log[-3000:]
    assert log_lines(log, "maestro-flux: submitting to")[0].endswith(
        "(from FLUX_URI environment variable)")


def test_a_misspelt_queue_fails_the_study_with_one_line_listing_the_queues(flux_mode, tmp_path):
    spec = tmp_path / "misspelt.yaml"
    spec.write_text(PRODUCTION.read_text().replace("queue: pdebug", "queue: pdebugg"))
    with extra_broker(flux_mode, tmp_path / "broker", queues=("pdebug", "pbatch")) as named:
        outdir = tmp_path / "study"
        done = maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)],
                       study_env(named), tmp_path)
    assert done.returncode != 0
    assert set(statuses(outdir).values()) == {"FAILED"}
    refusals = log_lines(done.stderr, "was not submitted")
    assert refusals and all(line.endswith(
        f"maestro-flux: step 'prep' was not submitted: queue 'pdebugg' does not exist on "
        f"{named.uri}; its queues are: pbatch, pdebug") for line in refusals), refusals


def test_empty_flux_uri_counts_as_unset(flux_mode, monkeypatch):
    monkeypatch.setenv("FLUX_URI", "")
    try:
        handle = bindings.connect(None)  # a system instance, where there is one
        del handle  # flux-python closes it (0.61's close() refuses to)
    except OSError as err:  # none here: the default URI's socket is missing
        assert "connector name ''" not in str(err) and "Unable to connect to Flux" in str(err)
    assert "FLUX_URI" not in os.environ


def test_the_grace_keeps_a_lagging_job_pending_in_a_whole_study(flux_mode, tmp_path):
    if flux_mode.real:
        pytest.skip("a real job-list cannot be made to lag; see test_lag.py for 1000 steps")
    with extra_broker(flux_mode, tmp_path / "broker", size=1, list_lag=2.5) as lagging:
        outdir = tmp_path / "study"
        done = maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(PRODUCTION)],
                       study_env(lagging), tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(statuses(outdir).values()) == {"FINISHED"}
    assert "UNKNOWN" not in done.stderr


def test_jobs_missing_from_job_list_end_unknown_after_the_grace(flux_mode, tmp_path, caplog,
                                                                monkeypatch):
    if flux_mode.real:
        pytest.skip("a real job-list cannot be made to lag")
    with extra_broker(flux_mode, tmp_path / "broker", list_lag=60) as lagging:
        monkeypatch.setenv("FLUX_URI", lagging.uri)
        STUDIES.clear()
        adapter = FluxAdapter(type="flux")
        jobid, _ = write_and_submit(adapter, make_step(cmd="true"), tmp_path)
        assert adapter.check_jobs([jobid])[1] == {jobid: State.PENDING}
        broker = adapter.study.broker(lagging.uri)
        broker.listing_grace.grace = 0.5  # instead of waiting out LISTING_GRACE
        time.sleep(0.6)
        assert adapter.check_jobs([jobid])[1] == {jobid: State.UNKNOWN}
        assert ("job-list has not listed it within the grace period of 0.5s after its "
                "submission") in caplog.text
        STUDIES.clear()


# -- doctor and render say which rules apply here ---------------------------------------
def test_doctor_lists_the_named_queues_and_as_a_guest_says_banks_cannot_be_told(
        flux_mode, tmp_path, monkeypatch):
    from test_doctor import line, run, spec_with

    spec = spec_with(tmp_path, "  type: flux\n  queue: pdebugg\n  bank: guests")
    with extra_broker(flux_mode, tmp_path / "broker", queues=("pdebug", "pbatch")) as named:
        monkeypatch.setenv("FLUX_URI", named.uri)
        monkeypatch.setenv("FLUX_HANDLE_ROLEMASK", "0x2")  # a guest's connection
        status, lines = run(spec)
    assert status == 1
    assert line(lines, "queues") == ("  ok  queues     pbatch, pdebug; default pdebug (from "
                                     "config.get): a queue not among them refuses the step")
    assert line(lines, "queue") == (f"FAIL  queue      batch.queue: queue 'pdebugg' does not "
                                    f"exist on {named.uri}; its queues are: pbatch, pdebug")
    assert line(lines, "bank").startswith(
        f"warn  bank       'guests' is kept in the jobspec; whether {named.uri} checks it is "
        "unknown: job-manager.jobtap refused (Request requires owner credentials: a guest "
        "cannot ask it)")


def test_render_says_what_happens_to_the_queue_and_bank_here(flux_mode, tmp_path):
    env = {**os.environ, **flux_mode.env}
    done = cli("render", str(PRODUCTION), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (f"queues on {flux_mode.uri}: none configured (one anonymous queue): a queue is "
            "dropped, with one warning (batch.portable: false keeps it)") in done.stdout
    assert (f"bank: 'guests' is kept in the jobspec; {flux_mode.uri} does not run "
            "flux-accounting, so Flux accepts and ignores it") in done.stdout
    assert done.stdout.count("# maestro-flux: queue 'pdebug' dropped:") == 2
    assert "#flux: --queue" not in done.stdout and done.stdout.count("bank: guests") == 2


# -- nothing raises into the conductor ---------------------------------------------------
def test_an_unexpected_error_while_polling_or_canceling_is_a_logged_safe_state(
        flux_mode, tmp_path, monkeypatch, caplog):
    adapter = FluxAdapter(type="flux")
    jobid, _ = write_and_submit(adapter, make_step(cmd="true"), tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(broker_module.Broker, "statuses", broken)
    monkeypatch.setattr(broker_module.Broker, "cancel", broken)
    code, states = adapter.check_jobs([jobid, "f1111111"])
    assert code.name == "OK" and states == {jobid: State.NOTFOUND, "f1111111": State.NOTFOUND}
    record = adapter.cancel_jobs([jobid])
    assert record.cancel_status.name == "ERROR" and record.return_code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["maestro-flux: cannot poll 2 job(s): unexpected RuntimeError: a bug; they "
                      "keep their state and are polled again next cycle",
                      "maestro-flux: cannot cancel 1 job(s): unexpected RuntimeError: a bug"]
