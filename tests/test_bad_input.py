"""Bad input: generated malformed batch blocks, profiles, step keys, templates and
whole specs, and a table of the mistakes a first spec has. Each must end in one
line that names the file and the key or line at fault, with a non-zero exit from
every command; none may raise anything else, and none may reach the broker."""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from brokers import ROOT
from helpers import make_step
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import BIN, cli

from maestro_flux.cli.main import main
from maestro_flux.cli.spec_check import SpecError, check_spec
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import StudyState
from maestro_flux.model.batch_options import batch_schema, parse_batch_block
from maestro_flux.model.errors import BatchBlockError
from maestro_flux.model.option_table import OPTIONS, SUBMIT_ONLY

KNOWN = sorted(batch_schema()["properties"])
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 50), st.floats(allow_nan=True),
    st.text(max_size=8), st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.none()), max_size=2))
KEYS = st.one_of(st.sampled_from(KNOWN), st.sampled_from(sorted(SUBMIT_ONLY)),
                 st.text(string.ascii_letters + "-_", min_size=1, max_size=12))
PROFILE = st.dictionaries(st.one_of(st.sampled_from(sorted(OPTIONS) + ["file", "nested"]),
                                    KEYS), JUNK, min_size=1, max_size=3)


def one_line_naming(message: str, *names: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert any(name in message for name in names), message


@st.composite
def bad_blocks(draw):
    block = {"type": "flux"}
    block.update(draw(st.dictionaries(KEYS, JUNK, min_size=1, max_size=3)))
    if draw(st.booleans()):
        block["type"] = draw(st.one_of(st.just("flux"), JUNK))
    return block


@st.composite
def bad_profiles(draw):
    profiles = draw(st.dictionaries(st.text(max_size=6), PROFILE, min_size=1, max_size=2))
    steps = draw(st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), JUNK),
                                 max_size=2))
    return {"type": "flux", "profiles": profiles, "steps": steps}


def check_block(block: dict) -> None:
    try:
        parse_batch_block(block)
    except BatchBlockError as err:
        one_line_naming(str(err), "batch")


@settings(max_examples=250, deadline=None)
@given(bad_blocks())
def test_malformed_batch_blocks_get_one_line_naming_the_key(block):
    check_block(block)


@settings(max_examples=150, deadline=None)
@given(bad_profiles())
def test_malformed_profiles_get_one_line_naming_the_profile_or_key(block):
    check_block(block)


# No line names a queue: a template that is valid and names one rightly asks the
# broker which queues it has (test_a_valid_queue_is_the_only_reason_to_ask_the_broker).
# "#FLUX: -B x" keeps the upper-case sentinel, with an option that needs no broker.
LINES = st.sampled_from([
    "{{ maestro_command }}", "{{ maestro_command", "{% if %}", "{{ nosuch }}", "{% endif %}",
    "#flux: --nodes=0", "#flux: --tasks-per-node=2", "#flux: -N", "#flux: --bogus",
    "#flux: '--queue", '#flux: """', "#flux --nodes=1", "#flux: --setattr==1",
    "#flux: --urgency=99", "#FLUX: -B x", "echo hi", "{{ params.missing }}",
    "{{ ''.__class__.__mro__ }}", "{{ step_name | nosuchfilter }}", "#flux: --time-limit=x",
    "#flux: positional", "{% for x in 3 %}{% endfor %}", "\x00", "#flux: -n 2 -N 4"])
STEP_KEYS = st.fixed_dictionaries({}, optional={
    "procs": JUNK, "nodes": JUNK, "walltime": JUNK, "priority": JUNK, "gpus": JUNK,
    "cores per task": JUNK, "exclusive": JUNK, "nested": JUNK})


@pytest.fixture
def no_broker(monkeypatch):
    """Any attempt to reach a broker fails the test: bad input must stop before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the broker")

    monkeypatch.setattr(StudyState, "broker", refuse)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(LINES, min_size=1, max_size=6), STEP_KEYS)
def test_malformed_templates_and_step_keys_stop_before_the_broker(tmp_path, no_broker, lines,
                                                                  run):
    template = tmp_path / "t.sh.j2"
    template.write_text("#!/bin/sh\n" + "\n".join(lines) + "\n")
    adapter = FluxAdapter(type="flux", file=str(template))
    step = make_step(name="s", cmd="$(LAUNCHER) app", **run)
    _, script, _ = adapter.write_script(str(tmp_path), step)
    text = open(script).read()
    problems = [line for line in text.splitlines() if "cannot be submitted" in line]
    if problems:
        assert len(problems) == 1
        one_line_naming(problems[0], str(template), "'procs'", "'nodes'", "'walltime'",
                        "'priority'", "'gpus'", "'cores per task'", "'exclusive'",
                        "'nested", "nslots", "conf and broker-opts")
        record = adapter.submit(step, script, str(tmp_path))
        assert record.submission_code.name == "ERROR"


def test_a_valid_queue_is_the_only_reason_to_ask_the_broker(tmp_path, no_broker):
    """The guard above is live: a valid template naming a queue does ask the broker."""
    template = tmp_path / "t.sh.j2"
    template.write_text("#!/bin/sh\n#FLUX: -q x\n{{ maestro_command }}\n")
    adapter = FluxAdapter(type="flux", file=str(template))
    with pytest.raises(AssertionError, match="bad input reached the broker"):
        adapter.write_script(str(tmp_path), make_step(name="s", cmd="true"))


# -- a study spec's mistakes, whatever the command --------------------------------------
HELLO = (ROOT / "specs" / "hello_world.yaml").read_text()

#: A spec mistake (the hello-world spec, edited) and words its one line must hold.
SPEC_MISTAKES = {
    "yaml": (lambda s: s.replace("batch:\n", "batch: [\n", 1),
             ":8: YAML does not parse: expected ',' or ']', but got ':' (while parsing a "
             "flow sequence on line 5)"),
    "no description": (lambda s: s.replace(s[:s.index("batch:")], ""),
                       "section 'description' is missing"),
    "no name": (lambda s: s.replace("  name: hello_world\n", ""), "description.name"),
    "section": (lambda s: s.replace("\nstudy:", "\nstudies:"),
                "unknown section 'studies' (did you mean 'study'?)"),
    "batch key": (lambda s: s.replace("type: flux", "type: flux\n  quue: x"),
                  "batch: unknown key 'quue' (did you mean 'queue'?)"),
    "batch type": (lambda s: s.replace("type: flux", "type: slurm"), "batch.type is 'slurm'"),
    "batch duration": (lambda s: s.replace("type: flux", "type: flux\n  time-limit: abc"),
                       "batch.time-limit: 'time-limit' 'abc' is not HH:MM:SS"),
    "batch count": (lambda s: s.replace("type: flux", "type: flux\n  nslots: 0"),
                    "batch.nslots"),
    "batch name": (lambda s: s.replace("type: flux", "type: flux\n  job-name: [a, b]"),
                   "batch.job-name"),
    "profile name": (lambda s: s.replace("type: flux", "type: flux\n  profiles: {'a b': {}}"),
                     "profile name 'a b'"),
    "step duration": (lambda s: s.replace('walltime: "00:01:00"', "walltime: soon", 1),
                      "study step 'say_hello': run: 'walltime' 'soon' is not HH:MM:SS"),
    "step count": (lambda s: s.replace('walltime: "00:01:00"', "procs: many", 1),
                   "study step 'say_hello': run: 'procs' must be a whole number"),
    "step key": (lambda s: s.replace("walltime:", "wallclock:", 1),
                 "study step 'say_hello': run: unknown key 'wallclock' (did you mean "
                 "'walltime'?)"),
    "step name": (lambda s: s.replace("- name: say_hello", "- name: ''"),
                  "study step 1: 'name' is missing or not text"),
    "template": (lambda s: s.replace("type: flux", "type: flux\n  file: nosuch.sh.j2"),
                 "batch.file: batch file 'nosuch.sh.j2': no such template"),
}


def written_spec(directory, case: str):
    edit, _ = SPEC_MISTAKES[case]
    path = directory / f"{case.replace(' ', '_')}.yaml"
    path.write_text(edit(HELLO))
    return path


def test_the_spec_mistakes_are_what_they_say(tmp_path):
    """Each edit above changed the spec (else its case would test the good spec)."""
    for case in SPEC_MISTAKES:
        assert written_spec(tmp_path, case).read_text() != HELLO, case


@pytest.mark.parametrize("case", sorted(SPEC_MISTAKES))
def test_every_spec_mistake_is_one_line_naming_the_file_and_key(tmp_path, case):
    path = written_spec(tmp_path, case)
    with pytest.raises(SpecError) as caught:
        check_spec(str(path))
    message = str(caught.value)
    one_line_naming(message, SPEC_MISTAKES[case][1])
    assert message.startswith(f"{path}:"), message


def test_a_missing_spec_is_one_line(tmp_path):
    with pytest.raises(SpecError, match=r"nope.yaml: no such study specification$"):
        check_spec(str(tmp_path / "nope.yaml"))


def without_flux(tmp_path) -> dict:
    """An environment where no broker can be reached and no flux runs."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "flux").exists())
    env = {k: v for k, v in os.environ.items() if k != "FLUX_URI"}
    env.update(PATH=f"{BIN}{os.pathsep}{path}", FLUX_URI=f"local://{tmp_path}/none/local-0")
    return env


COMMANDS = (("run", "--dry-without-flux"), ("run", "--dry"), ("render",))


@pytest.mark.parametrize("case", ["yaml", "no description", "batch key", "batch duration",
                                  "step duration", "template", "missing file"])
def test_every_command_stops_a_spec_mistake_with_one_line(tmp_path, case):
    path = tmp_path / "nope.yaml" if case == "missing file" else written_spec(tmp_path, case)
    words = "no such study specification" if case == "missing file" else SPEC_MISTAKES[case][1]
    env = without_flux(tmp_path)
    for command in COMMANDS:
        done = cli(*command, str(path), env=env, cwd=tmp_path)
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"maestro-flux: {path}:")
        one_line_naming(done.stderr.strip(), words)
        assert not (tmp_path / "studies").exists()  # nothing was written, or submitted
    done = cli("doctor", str(path), env=env, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    spec_lines = [line for line in done.stdout.splitlines() if line.startswith("FAIL  spec")]
    assert len(spec_lines) == 1 and words in spec_lines[0], done.stdout
    assert done.stdout.splitlines()[-1].startswith("submission would fail")


def test_a_step_refused_after_expansion_fails_the_dry_run_in_one_line(tmp_path):
    """A parameter's value is only checked once Maestro has expanded the step."""
    spec = tmp_path / "param.yaml"
    spec.write_text(HELLO.replace('walltime: "00:01:00"', "walltime: $(NAME)", 1))
    done = cli("run", "--dry-without-flux", str(spec), env=without_flux(tmp_path),
               cwd=tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    one_line_naming(last, "'walltime' 'Pam' is not HH:MM:SS")  # the first script, sorted
    assert last.startswith(f"maestro-flux: {spec}: step 'say_hello_") and "more step(s)" in last
    assert "dry run complete" not in done.stderr


# -- random YAML documents through the README's first command and doctor -----------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 99), st.text(max_size=6),
                    st.sampled_from(["flux", "abc", "1:00", "$(X)", "echo hi", "10m"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
TEXT = st.text(min_size=1, max_size=8)
BATCH = st.dictionaries(st.sampled_from([*KNOWN, "quue", "walltime"]), VALUES, max_size=3).map(
    lambda block: {"type": "flux", **block})
RUN = st.dictionaries(st.sampled_from(["nodes", "procs", "walltime", "priority", "exclusive",
                                       "nested", "gpus", "wallclock"]), VALUES, max_size=2).map(
    lambda run: {"cmd": "echo hi", **run})
STEP = st.fixed_dictionaries({"name": TEXT, "description": TEXT, "run": RUN})
DOCUMENTS = st.one_of(
    st.fixed_dictionaries({}, optional={
        "description": st.one_of(VALUES, st.fixed_dictionaries({"name": TEXT,
                                                                "description": TEXT})),
        "batch": st.one_of(VALUES, BATCH), "study": st.one_of(VALUES, st.lists(STEP, max_size=2)),
        "env": VALUES, "studdy": VALUES}).map(yaml.safe_dump),
    VALUES.map(yaml.safe_dump), st.text(max_size=40))


@pytest.fixture
def no_broker_here(monkeypatch):
    """The commands below run as on a machine without flux-core, whatever this one has."""
    from maestro_flux.cli import runner

    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    monkeypatch.setattr(runner, "_reachable_broker", lambda: None)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(DOCUMENTS)
def test_random_specs_get_a_dry_run_or_one_line(no_broker_here, capfd, text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text)
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            status = main(["run", "--dry-without-flux", str(path)])
        finally:
            os.chdir(cwd)
        out, err = capfd.readouterr()
        assert "Traceback" not in out + err
        last = err.strip().splitlines()[-1]
        if status == 0:
            assert "dry run complete" in last
        else:
            assert status == 1 and last.startswith(f"maestro-flux: {path}:"), err
        status = main(["doctor", str(path)])
        out, err = capfd.readouterr()
        assert "Traceback" not in out + err and status in (0, 1)
        assert out.splitlines()[-1].startswith("submission ")
        failed_spec = [line for line in out.splitlines() if line.startswith("FAIL  spec")]
        assert len(failed_spec) <= 1 and all(f"{path}:" in line for line in failed_spec)


def test_a_section_maestro_ignores_is_accepted_unless_it_looks_misspelt(tmp_path):
    """Maestro ignores top-level keys it does not know (specs keep YAML anchors there):
    only a near miss of a section is refused."""
    base = (ROOT / "specs" / "hello_world.yaml").read_text()
    anchors = tmp_path / "anchors.yaml"
    anchors.write_text("x-common: &walltime '00:01:00'\n" + base)
    assert check_spec(str(anchors)).batch["type"] == "flux"
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(base.replace("global.parameters:", "global.parameter:"))
    with pytest.raises(SpecError, match="unknown section 'global.parameter' "
                                        r"\(did you mean 'global.parameters'\?\)"):
        check_spec(str(misspelt))
