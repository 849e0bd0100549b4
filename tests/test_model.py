"""The plain-Python layers: batch block, resource model, urgency, environment,
job ids and state tables. No broker needed."""

from __future__ import annotations

import pytest
from maestrowf.abstracts.enums import State

from maestro_flux.broker.uri import choose_broker
from maestro_flux.model.batch_options import parse_batch_block
from maestro_flux.model.environment import job_environment
from maestro_flux.model.errors import BatchBlockError, StepError
from maestro_flux.model.jobids import f58_encode, parse_jobid
from maestro_flux.model.request import launcher_command
from maestro_flux.model.resources import step_resources as model_of
from maestro_flux.model.resources import wants_nested
from maestro_flux.model.states import (
    ACTIVE_STATE_MAP,
    RESULT_MAP,
    STATE_NAMES,
    JobStatus,
    status_from_listing,
)
from maestro_flux.model.step_keys import step_options, walltime_seconds
from maestro_flux.model.urgency import clamp, urgency_of


def step_resources(run, nested_default=None):
    """The resource model of a step that has only its Maestro keys."""
    options = step_options(run)
    return model_of(options, run, wants_nested(run, options, nested_default))


# -- the batch block ---------------------------------------------------------
@pytest.mark.parametrize("block, message", [
    ({"type": "flux", "queu": "pbatch"}, "batch: unknown key 'queu' (did you mean 'queue'?)"),
    ({"type": "flux", "flux_ur": "x"}, "batch: unknown key 'flux_ur' (did you mean 'flux_uri'?)"),
    ({"type": "flux", "queue": 3}, "batch.queue: 3 is not of type 'string'"),
    ({"type": "flux", "allocation_args": {"setatr": {}}},
     "batch.allocation_args: unknown key 'setatr' (did you mean 'setattr'?)"),
    ({"type": "flux", "launcher_args": {"conf": {"a": 1}}}, "batch.launcher_args.conf: flux run"),
    ({"type": "flux", "uri": "a", "flux_uri": "b"}, "both 'flux_uri' and its deprecated alias"),
    ({"type": "flux", "nested": "yes"}, "batch.nested: 'yes' is not of type 'boolean'"),
    ({"type": "flux", "tasks-per-node": 2},
     "batch: 'tasks-per-node' is a flux submit/run option that flux batch does not accept; "
     "use 'nslots with nodes'"),
    ({"type": "flux", "cores-per-task": 2}, "flux batch does not accept; use 'cores-per-slot'"),
    ({"type": "flux", "cwd": "/x"}, "batch: 'cwd' cannot be set: every step runs in its Maestro"),
    ({"type": "flux", "time_limit": 5}, "unknown key 'time_limit' (did you mean 'time-limit'?)"),
    ({"type": "flux", "nodes": 0}, "batch.nodes: 0 is less than the minimum of 1"),
    ({"type": "flux", "urgency": 40}, "batch.urgency: 40 is greater than the maximum of 31"),
    ({"type": "flux", "exclusive": "yes"}, "batch.exclusive: 'yes' is not of type 'boolean'"),
    ({"type": "flux", "setattr": 5}, "batch.setattr: 5 is not a valid value (flux batch -S"),
    ({"type": "flux", "requires": {"a": 1}}, "batch.requires: {'a': 1} is not a valid value"),
    ({"type": "flux", "profiles": {"gpu": {"quue": "x"}}},
     "batch.profiles.gpu: unknown key 'quue' (did you mean 'queue'?)"),
    ({"type": "flux", "profiles": {"gpu": {"ntasks": 4}}},
     "batch.profiles.gpu: 'ntasks' is a flux submit/run option"),
    ({"type": "flux", "profiles": {"gpu": {}}, "steps": {"train*": "gpux"}},
     "batch.steps.train*: unknown profile 'gpux' (did you mean 'gpu'?); profiles: gpu"),
    ({"type": "flux", "profiles": {"a b": {}}},
     "profile name 'a b' may use only letters, digits, _ . -"),
    ({"type": "flux", "setattr": ["=1"]}, "batch.setattr: 'setattr' entry '=1' has no key"),
    ({"type": "flux", "dependency": [["x"]]}, "batch.dependency: [['x']] is not a valid value"),
])
def test_bad_batch_blocks_get_one_line_naming_the_key(block, message):
    with pytest.raises(BatchBlockError) as info:
        parse_batch_block(block)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_schema_and_the_option_table_list_the_same_options():
    from maestro_flux.model.batch_options import batch_schema
    from maestro_flux.model.option_table import OPTIONS

    schema = batch_schema()
    assert set(schema["$defs"]["options"]["properties"]) == set(OPTIONS)
    for where in (schema["properties"], schema["$defs"]["profile"]["properties"]):
        assert set(OPTIONS) <= set(where)


def test_options_are_read_in_their_canonical_forms():
    options = parse_batch_block({
        "type": "flux", "setattr": ["user.a", "user.b=2", 'user.c={"d":1}'], "setopt": "pty",
        "env": "A=1", "env-remove": ["B*"], "env-file": "rules.env", "time-limit": 5,
        "allocation_args": {"setattr": {"user.a": "low", "user.z": None}},
        "profiles": {"p": {"nodes": 2, "exclusive": True}}, "steps": {"x*": "p"}})
    found = options.defaults.options
    assert found["setattr"] == {"user.a": 1, "user.z": 1, "user.b": 2, "user.c": {"d": 1}}
    assert found["setopt"] == {"pty": 1}
    assert found["env"] == ["A=1", "-B*", "^rules.env"]
    assert found["time-limit"] == "5"
    assert options.profile_for("x1").options == {"nodes": 2, "exclusive": True}
    assert options.profile_for("y1") is None


def test_uri_is_a_deprecated_alias_of_flux_uri():
    options = parse_batch_block({"type": "flux", "uri": "local:///x/local-0"})
    assert options.flux_uri == "local:///x/local-0"
    assert options.warnings == ("batch.uri is deprecated: rename it to 'flux_uri'",)


def test_a_bad_block_fails_every_step_with_one_line_and_no_traceback(tmp_path, caplog):
    """Maestro prints a traceback and stops the conductor if construction raises,
    so a bad block is reported once and refuses every step instead."""
    from helpers import make_step

    from maestro_flux.maestro.adapter import FluxAdapter

    adapter = FluxAdapter(type="flux", bnak="x")
    step = make_step(cmd="echo never")
    _, script, _ = adapter.write_script(str(tmp_path), step)
    assert ("# maestro-flux: this step cannot be submitted: step 'step': batch: unknown key "
            "'bnak' (did you mean 'bank'?)") in open(script).read()
    assert adapter.submit(step, script, str(tmp_path)).submission_code.name == "ERROR"
    assert [r.getMessage() for r in caplog.records if "bnak" in r.getMessage()][0] == (
        "maestro-flux: batch: unknown key 'bnak' (did you mean 'bank'?); no step will be "
        "submitted until the batch block is fixed")


@pytest.mark.parametrize("flux_uri, env, expected", [
    ("local:///a/local-0", {"FLUX_URI": "local:///b/local-0"}, ("local:///a/local-0", "batch")),
    (None, {"FLUX_URI": "local:///b/local-0"}, ("local:///b/local-0", "FLUX_URI")),
    (None, {}, (None, "default")),
])
def test_broker_precedence(flux_uri, env, expected):
    choice = choose_broker(flux_uri, env)
    assert choice.uri == expected[0]
    assert choice.source.startswith(expected[1])


# -- the resource model ------------------------------------------------------
@pytest.mark.parametrize("run, nested", [
    ({"cmd": "echo"}, False),
    ({"cmd": "echo", "procs": 8}, False),
    ({"cmd": "$(LAUNCHER) app", "procs": 2}, True),
    ({"cmd": "app", "nodes": 2, "procs": 2}, True),
    ({"cmd": "app", "restart": "$(LAUNCHER) app --restart"}, True),
    ({"cmd": "$(LAUNCHER) app", "nested": False}, False),
    ({"cmd": "echo", "nested": True}, True),
])
def test_nested_or_direct_rule(run, nested):
    assert step_resources(run).nested is nested


def test_batch_nested_default_applies_unless_the_step_says_otherwise():
    assert step_resources({"cmd": "echo"}, nested_default=True).nested is True
    assert step_resources({"cmd": "echo", "nested": False}, nested_default=True).nested is False


def test_direct_step_holds_all_its_cores_in_one_slot():
    res = step_resources({"cmd": "app", "procs": 4, "cores per task": 2, "gpus": 1})
    assert (res.slots, res.cores_per_slot, res.gpus_per_slot) == (1, 8, 4)


def test_nested_step_has_one_slot_per_task():
    res = step_resources({"cmd": "$(LAUNCHER) app", "procs": 4, "cores per task": 2, "gpus": 1,
                          "nodes": 2})
    assert (res.nodes, res.slots, res.cores_per_slot, res.gpus_per_slot) == (2, 4, 2, 1)


def test_nodes_alone_means_one_task_per_node():
    assert step_resources({"cmd": "app", "nodes": 3}).slots == 3


@pytest.mark.parametrize("run, message", [
    ({"cmd": "a", "procs": "many"}, "'procs' must be a whole number, not 'many'"),
    ({"cmd": "a", "procs": 0}, "'procs' must be at least 1"),
    ({"cmd": "a", "nodes": 4, "procs": 2}, "'nodes' (4) must not exceed 'procs'/nslots (2)"),
    ({"cmd": "a", "exclusive": True}, "'exclusive' needs a node count"),
    ({"cmd": "a", "nodes": 2, "procs": 2, "nested": False}, "'nested: false' cannot span 2"),
    ({"cmd": "a", "walltime": "soon"}, "'walltime' 'soon' is not HH:MM:SS"),
    ({"cmd": "a", "priority": "urgent"}, "'priority' 'urgent' is not one of"),
])
def test_bad_step_keys_name_the_key(run, message):
    with pytest.raises(StepError) as info:
        step_resources(run)
    assert message in str(info.value)


@pytest.mark.parametrize("value, seconds", [
    ("01:30:00", 5400), ("10:00", 600), ("1-00:00:01", 86401), (30, 1800), ("30", 1800),
    ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("", 0), (None, 0), ("inf", 0),
    ("0", 0), (1.5, 90),
])
def test_walltime_forms(value, seconds):
    assert walltime_seconds(value) == seconds


@pytest.mark.parametrize("priority, urgency", [
    (None, 16), ("held", 0), ("HELD", 0), ("minimal", 1), ("Low", 8), ("medium", 16),
    ("high", 24), ("expedite", 31), ("Expedited", 31), (0.0, 0), (0.5, 16), (1.0, 31),
    (1, 31), (20, 20), ("0.25", 8),
])
def test_every_maestro_priority_has_an_urgency(priority, urgency):
    assert urgency_of(priority) == urgency


def test_guests_are_clamped_to_16():
    assert clamp(urgency_of("expedited"), guest=True) == 16
    assert clamp(urgency_of("low"), guest=True) == 8
    assert clamp(urgency_of("expedited"), guest=False) == 31


def test_launcher_command_uses_the_model():
    res = step_resources({"cmd": "$(LAUNCHER) app", "procs": 4, "nodes": 2,
                          "cores per task": 3, "gpus": 1, "exclusive": {"launcher": True}})
    from maestro_flux.model.batch_options import ExtraArgs

    launcher = ExtraArgs(setattr={"user.tag": "x"}, setopt={"mpi": "spectrum"})
    assert launcher_command(res, launcher) == (
        "flux run -N2 -n4 -c3 -g1 -x --setattr=user.tag=x --setopt=mpi=spectrum")
    assert launcher_command(res, launcher, tasks=1, nodes=1).startswith("flux run -N1 -n1 -c3")


# -- the job environment -----------------------------------------------------
SOURCE = {"PATH": "/bin", "HOME": "/home/u", "AWS_SECRET_ACCESS_KEY": "x", "GITHUB_TOKEN": "t",
          "SSH_AUTH_SOCK": "/s", "FLUX_URI": "local:///x", "MY_DB_PASSWORD": "p",
          "OMP_NUM_THREADS": "4"}


def test_default_environment_drops_secrets_and_flux_connection_vars():
    env = job_environment(source=SOURCE)
    assert env == {"PATH": "/bin", "HOME": "/home/u", "OMP_NUM_THREADS": "4"}


def test_environment_rules_set_copy_and_remove():
    env = job_environment(["-OMP_*", "GITHUB_TOKEN", "GREETING=hi from $HOME"], source=SOURCE)
    assert env == {"PATH": "/bin", "HOME": "/home/u", "GITHUB_TOKEN": "t",
                   "GREETING": "hi from /home/u"}


def test_allow_list_and_replaced_deny_list():
    assert job_environment(["-*", "PATH"], source=SOURCE) == {"PATH": "/bin"}
    assert "FLUX_URI" in job_environment(deny=["AWS_*"], source=SOURCE)


def test_environment_follows_changes_to_the_conductor_environment(monkeypatch):
    monkeypatch.setenv("MF_BENCH_PROBE", "one")
    first = job_environment()
    first["MF_BENCH_PROBE"] = "changed by a caller"  # callers get their own copy
    assert job_environment()["MF_BENCH_PROBE"] == "one"
    monkeypatch.setenv("MF_BENCH_PROBE", "two")
    assert job_environment()["MF_BENCH_PROBE"] == "two"
    monkeypatch.delenv("MF_BENCH_PROBE")
    assert "MF_BENCH_PROBE" not in job_environment()


# -- ids and states ----------------------------------------------------------
def test_job_ids_round_trip_in_every_plain_form():
    number = 11005853696
    for form in ("11005853696", "0x290000000", "0000.0002.9000.0000",
                 "job.0000.0002.9000.0000", "\u0192HmYssD", "fHmYssD", number):
        assert parse_jobid(form) == number
        assert f58_encode(parse_jobid(form)) == "fHmYssD"
    assert f58_encode(0) == "f1"
    for garbage in ("not-a-job", "f0OIl", "", "0xZZ", "-5"):
        with pytest.raises(ValueError, match="is not a valid Flux jobid"):
            parse_jobid(garbage)


def test_every_flux_state_has_a_maestro_state():
    assert set(ACTIVE_STATE_MAP) | {"INACTIVE"} == set(STATE_NAMES.values())
    assert ACTIVE_STATE_MAP["PRIORITY"] == "PENDING"
    # The model names Maestro's states; each name must be a member of its enum.
    for name in [*ACTIVE_STATE_MAP.values(), *RESULT_MAP.values(), "UNKNOWN"]:
        assert State[name].name == name


@pytest.mark.parametrize("entry, state", [
    ({"state": 64, "result": 1, "waitstatus": 0}, State.FINISHED),
    ({"state": 64, "result": 2, "waitstatus": 768}, State.FAILED),
    ({"state": 64, "result": 4}, State.CANCELLED),
    ({"state": 64, "result": 8, "waitstatus": 36352}, State.TIMEDOUT),
    ({"state": 4}, State.PENDING), ({"state": 8}, State.QUEUED), ({"state": 16}, State.RUNNING),
    ({"state": 32}, State.FINISHING), ({"state": 1}, State.PENDING), ({"state": 2}, State.PENDING),
])
def test_listing_entries_map_to_maestro_states(entry, state):
    assert State[status_from_listing(entry).maestro_state] == state


def test_failure_reason_is_one_line():
    status = JobStatus("INACTIVE", "FAILED", 1, "alloc", "unsatisfiable request: need 64 node(s)")
    assert status.reason() == ("FAILED, exit code 1, the scheduler cannot satisfy the request: "
                               "unsatisfiable request: need 64 node(s)")


def test_adapter_construction_opens_no_connection(monkeypatch):
    from maestro_flux.broker import bindings
    from maestro_flux.maestro.adapter import FluxAdapter

    def refuse(uri):
        raise AssertionError("construction must not connect")

    monkeypatch.setattr(bindings, "connect", refuse)
    monkeypatch.setattr(bindings, "bindings", refuse)
    for _ in range(3):
        FluxAdapter(type="flux", flux_uri="local:///x/local-0", queue="q")


def test_broker_uri_and_deprecation_are_logged_once_per_process(caplog):
    import logging

    from maestro_flux.maestro.adapter import FluxAdapter

    caplog.set_level(logging.INFO)
    for _ in range(3):
        FluxAdapter(type="flux", uri="local:///once/local-0")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("submitting to local:///once/local-0" in m for m in messages) == 1
    assert sum("batch.uri is deprecated" in m for m in messages) == 1


def test_env_files_and_regex_patterns_follow_flux_rules(tmp_path):
    from maestro_flux.maestro.planner import read_rule_file

    rules = tmp_path / "rules.env"
    rules.write_text("# a comment\n\nFROM_FILE=1\n-/^DROP_[0-9]+$/\n")
    env = job_environment([f"^{rules}"], deny=(),
                          source={"DROP_1": "x", "DROP_X": "y", "KEEP": "z"},
                          read_rules=read_rule_file)
    assert env == {"DROP_X": "y", "KEEP": "z", "FROM_FILE": "1"}
    with pytest.raises(StepError, match="env-file /no/such/file: No such file"):
        job_environment(["^/no/such/file"], source={}, read_rules=read_rule_file)


def test_env_file_rules_are_read_by_the_callers_reader_and_nest_boundedly():
    files = {"a": ["^b", "A=1"], "b": ["B=2"], "loop": ["^loop"]}
    env = job_environment(["^a"], deny=(), source={}, read_rules=files.__getitem__)
    assert env == {"A": "1", "B": "2"}
    with pytest.raises(StepError, match="env-file loop: .*nested more than 8 deep"):
        job_environment(["^loop"], source={}, read_rules=files.__getitem__)
    with pytest.raises(StepError, match="env-file a: no reader"):
        job_environment(["^a"], source={})


def test_the_builtin_adapters_spellings_are_read():
    options = parse_batch_block({
        "type": "flux", "allocation_args": {"S": {"user.a": 1}, "o": {"pty": None}, "x": None},
        "launcher_args": {"o": {"mpi": "spectrum"}, "exclusive": True}})
    assert options.defaults.options == {"setattr": {"user.a": 1}, "setopt": {"pty": 1},
                                        "exclusive": True}
    assert options.launcher.setopt == {"mpi": "spectrum"} and options.launcher.exclusive
    res = step_resources({"cmd": "$(LAUNCHER) app", "procs": 2, "nodes": 2})
    assert launcher_command(res, options.launcher) == (
        "flux run -N2 -n2 -c1 -x --setopt=mpi=spectrum")


def test_flags_are_checked_when_read_and_waitable_is_a_step_key():
    with pytest.raises(BatchBlockError, match="unknown submission flag 'wait'"):
        parse_batch_block({"type": "flux", "flags": ["debug,wait"]})
    assert step_options({"cmd": "x", "waitable": True}) == {"flags": ["waitable"]}


def test_what_is_written_to_disk_keeps_no_secret_and_keeps_the_broker():
    from maestro_flux.model.environment import without_secrets

    kept = without_secrets({"GITHUB_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "k",
                            "SSH_AUTH_SOCK": "/s", "FLUX_URI": "local:///b", "PATH": "/bin"})
    assert kept == {"FLUX_URI": "local:///b", "PATH": "/bin"}
