"""Precedence, for each kind of option: a scalar, a flag, a multi-valued
option and a mapping. Lowest to highest: template directives, the batch block,
the step's profile, the step's own Maestro keys. Checked in the written header
and in the jobspec the bindings build from it."""

from __future__ import annotations

import json

import pytest
from helpers import make_step
from test_header_matches_jobspec import read_header

from maestro_flux.maestro.adapter import FluxAdapter

TEMPLATE = """#!/bin/bash
#flux: --queue=from-template --time-limit=5m
#flux: -N2 --exclusive
#flux: --requires=host:t --dependency=afterany:1
#flux: --setattr=user.a=template --setattr=user.b=template
#flux: --env=FROM_TEMPLATE=1
{{ maestro_command }}
"""
STEP = {"cmd": "$(LAUNCHER) hostname", "procs": 2}


def submitted(tmp_path, batch: dict, run: dict | None = None, name: str = "train1"):
    (tmp_path / "t.sh.j2").write_text(TEMPLATE)
    # The test broker has no named queues: portable: false keeps the queue, so that
    # precedence shows in it (tests/test_queues.py covers dropping).
    adapter = FluxAdapter(type="flux", file=str(tmp_path / "t.sh.j2"), portable=False, **batch)
    step = make_step(name=name, **(run or STEP))
    _, script, _ = adapter.write_script(str(tmp_path), step)
    text = open(script).read()
    assert "cannot be submitted" not in text, text
    jobspec, urgency, _ = adapter.planner.jobspec(step, script, str(tmp_path))
    return read_header(text), json.loads(jobspec.dumps()), text


def system(jobspec):
    return jobspec["attributes"]["system"]


# -- a scalar ---------------------------------------------------------------
@pytest.mark.parametrize("batch, expected", [
    ({}, "from-template"),
    ({"queue": "from-batch"}, "from-batch"),
    ({"queue": "from-batch", "profiles": {"p": {"queue": "from-profile"}},
      "steps": {"train*": "p"}}, "from-profile"),
])
def test_a_scalar_is_taken_from_the_highest_layer(flux_mode, tmp_path, batch, expected):
    header, jobspec, _ = submitted(tmp_path, batch)
    assert header.queue == expected == system(jobspec)["queue"]


@pytest.mark.parametrize("batch, run, seconds", [
    ({}, STEP, 300),
    ({"time-limit": 4}, STEP, 240),
    ({"time-limit": 4, "profiles": {"p": {"time-limit": "3m"}}, "steps": {"*": "p"}}, STEP, 180),
    ({"time-limit": 4, "profiles": {"p": {"time-limit": "3m"}}, "steps": {"*": "p"}},
     {**STEP, "walltime": "00:02:00"}, 120),
])
def test_a_step_key_beats_profile_batch_and_template(flux_mode, tmp_path, batch, run, seconds):
    header, jobspec, _ = submitted(tmp_path, batch, run)
    assert header.time_limit == f"{seconds}s"
    assert system(jobspec)["duration"] == seconds


# -- a flag -----------------------------------------------------------------
@pytest.mark.parametrize("batch, run, exclusive", [
    ({}, STEP, True),
    ({"exclusive": False}, STEP, False),
    ({"exclusive": False, "profiles": {"p": {"exclusive": True}}, "steps": {"*": "p"}}, STEP,
     True),
    ({"profiles": {"p": {"exclusive": True}}, "steps": {"*": "p"}},
     {**STEP, "exclusive": False}, False),
])
def test_a_flag_is_set_or_cleared_by_the_highest_layer(flux_mode, tmp_path, batch, run,
                                                       exclusive):
    header, jobspec, _ = submitted(tmp_path, batch, run)
    assert bool(header.exclusive) is exclusive
    node = jobspec["resources"][0]
    assert node["type"] == "node" and bool(node.get("exclusive")) is exclusive


# -- multi-valued -------------------------------------------------------------
def test_multi_valued_options_accumulate_in_layer_order(flux_mode, tmp_path):
    batch = {"requires": ["host:b"], "dependency": "afterany:2",
             "profiles": {"p": {"requires": "rank:0"}}, "steps": {"*": "p"}}
    header, jobspec, _ = submitted(tmp_path, batch)
    assert header.requires == ["host:t", "host:b", "rank:0"]
    assert header.dependency == ["afterany:1", "afterany:2"]
    assert system(jobspec)["constraints"] == {
        "and": [{"hostlist": ["t"]}, {"hostlist": ["b"]}, {"ranks": ["0"]}]}
    assert [d["value"] for d in system(jobspec)["dependencies"]] == ["1", "2"]


def test_env_rules_of_every_layer_apply_in_order(flux_mode, tmp_path, monkeypatch):
    monkeypatch.setenv("DROP_ME", "x")
    monkeypatch.setenv("KEEP_ME", "y")
    batch = {"env": ["FROM_BATCH=2"], "env-remove": ["DROP_*"],
             "profiles": {"p": {"env": ["FROM_TEMPLATE=3"]}}, "steps": {"*": "p"}}
    header, jobspec, _ = submitted(tmp_path, batch)
    env = system(jobspec)["environment"]
    assert header.env == ["FROM_TEMPLATE=1", "FROM_BATCH=2", "-DROP_*", "FROM_TEMPLATE=3"]
    assert env["FROM_TEMPLATE"] == "3" and env["FROM_BATCH"] == "2"
    assert "DROP_ME" not in env and env["KEEP_ME"] == "y"


# -- a mapping ----------------------------------------------------------------
def test_a_mapping_merges_key_by_key(flux_mode, tmp_path):
    batch = {"setattr": {"user.b": "batch", "user.c": "batch"},
             "profiles": {"p": {"setattr": {"user.c": "profile"}}}, "steps": {"*": "p"}}
    header, jobspec, _ = submitted(tmp_path, batch)
    assert sorted(header.setattr.items()) == [("user.a", "template"), ("user.b", "batch"),
                                             ("user.c", "profile")]
    assert jobspec["attributes"]["user"] == {"a": "template", "b": "batch", "c": "profile"}


# -- profiles -----------------------------------------------------------------
def test_the_first_matching_pattern_in_file_order_wins(flux_mode, tmp_path):
    batch = {"profiles": {"gpu": {"queue": "pgpu"}, "any": {"queue": "pall"}},
             "steps": {"train*": "gpu", "*": "any"}}
    assert submitted(tmp_path, batch, name="train7")[0].queue == "pgpu"
    assert submitted(tmp_path, batch, name="post")[0].queue == "pall"
    flipped = {**batch, "steps": {"*": "any", "train*": "gpu"}}
    assert submitted(tmp_path, flipped, name="train7")[0].queue == "pall"


def test_a_profile_can_bring_its_own_template_and_nested_choice(flux_mode, tmp_path):
    (tmp_path / "big.sh.j2").write_text("#!/bin/sh\n#flux: --queue=big-template\n"
                                        "{{ maestro_command }}\n")
    batch = {"profiles": {"big": {"file": str(tmp_path / "big.sh.j2"), "nested": False}},
             "steps": {"*": "big"}}
    header, jobspec, text = submitted(tmp_path, batch, {"cmd": "echo plain"})
    assert header.queue == "big-template" and text.startswith("#!/bin/sh\n")
    # A plain job runs the script with its own #! interpreter.
    assert jobspec["tasks"][0]["command"][0] == "/bin/sh"
