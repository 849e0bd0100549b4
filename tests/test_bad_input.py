"""Property-based bad input: generated malformed batch blocks, profiles, step
keys and templates. Each must end in one line that names the key, file or line
at fault; none may raise anything else, and none may reach the broker."""

from __future__ import annotations

import string

import pytest
from helpers import make_step
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
