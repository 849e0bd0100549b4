"""Every flux batch option in the batch block reaches the jobspec exactly as
``flux batch`` would put it there.

Each case writes a step script whose header holds the effective directives,
then builds the jobspec through the adapter. The result must equal what a real
0.88 ``flux batch --dry-run`` made of the same script (recorded in
tests/recordings/batch-options.json); in real-broker mode it is also compared
with a live ``flux batch --dry-run`` of the written script.

Set MAESTRO_FLUX_RECORD=1 in real-broker mode to rewrite the recording.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess

import pytest
from conftest import RECORDINGS
from helpers import make_step

from maestro_flux.broker import bindings
from maestro_flux.maestro.adapter import FluxAdapter

RECORDING = RECORDINGS / "batch-options.json"
NESTED = {"cmd": "$(LAUNCHER) hostname"}

CASES = {
    "resources": ({"nodes": 2, "nslots": 4, "cores-per-slot": 2, "exclusive": True}, NESTED),
    "nodes_only": ({"nodes": 2}, NESTED),
    "gpus": ({"nslots": 2, "gpus-per-slot": 1}, NESTED),
    "time_and_urgency": ({"time-limit": 90, "urgency": 20}, NESTED),
    "fsd_time": ({"time-limit": "1.5h"}, NESTED),
    "names_and_paths": ({"queue": "debug", "bank": "physics", "job-name": "custom",
                         "output": "out.{{id}}.txt", "error": "err.txt"}, NESTED),
    "dependencies": ({"dependency": ["afterok:123", "afterany:f2NRX5Yx?a=1"]}, NESTED),
    "constraints": ({"requires": ["host:foo", "rank:0"]}, NESTED),
    "mappings": ({"setattr": {"user.a": 1, "b": "x", "user.c": {"d": [1, 2]}},
                  "setopt": {"verbose": 2, "cpu-affinity": "off"},
                  "conf": {"resource.noverify": True, "tbon.fanout": 4}}, NESTED),
    "kv_strings": ({"setattr": ["user.flag", "user.n=3"], "setopt": "pty"}, NESTED),
    "broker_opts": ({"broker-opts": ["-Sbroker.quorum=1", "-Sa=1,-Sb=2"]}, NESTED),
    "rlimits": ({"rlimit": ["-*", "core=0", "nofile=1024"]}, NESTED),
    "signal": ({"signal": "USR2@30s"}, NESTED),
    "begin_time": ({"begin-time": "+1h"}, NESTED),
    "add_file": ({"add-file": ["data.txt", "renamed:0640=data.txt"]}, NESTED),
    "direct_step": ({"queue": "debug", "setattr": {"user.x": 1}, "requires": ["host:foo"],
                     "signal": "@2m"}, {"cmd": "echo plain"}),
}


def normalized(jobspec: dict, rlimits: bool) -> dict:
    """A jobspec without what differs from run to run (paths, environment, times)."""
    doc = copy.deepcopy(jobspec)
    system = doc["attributes"]["system"]
    system.pop("environment", None)
    system.pop("cwd", None)
    files = system.get("files", {})
    files.pop("script", None)
    if not files:
        system.pop("files", None)
    if not rlimits:
        system.get("shell", {}).get("options", {}).pop("rlimit", None)
    for dep in system.get("dependencies", []):
        if dep["scheme"] == "begin-time":
            dep["value"] = "<time>"
    for task in doc["tasks"]:
        # A direct step runs its written script, whose path is per run.
        task["command"] = [os.path.basename(word) for word in task["command"]]
    return doc


def built(name: str, tmp_path) -> tuple[dict, str]:
    options, run = CASES[name]
    (tmp_path / "data.txt").write_text("some data\n")
    os.chmod(tmp_path / "data.txt", 0o644)
    # portable: false keeps the queue on this broker without named queues, as flux batch does.
    adapter = FluxAdapter(type="flux", portable=False, **options)
    step = make_step(name=name, **run)
    _, script, _ = adapter.write_script(str(tmp_path), step)
    text = open(script).read()
    assert "cannot be submitted" not in text, text
    jobspec, _, _ = adapter.build_jobspec(step, script, str(tmp_path))
    return json.loads(jobspec.dumps()), script


def dry_run(script: str, cwd) -> dict:
    env = {k: v for k, v in os.environ.items() if k != bindings.BINDINGS_ENV}
    done = subprocess.run(["flux", "batch", "--dry-run", script], capture_output=True,
                          text=True, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def recorded() -> dict:
    return json.loads(RECORDING.read_text()) if RECORDING.exists() else {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_jobspec_is_what_flux_batch_made_of_it(flux_mode, tmp_path, name):
    jobspec, script = built(name, tmp_path)
    rlimits = "rlimit" in CASES[name][0]
    ours = normalized(jobspec, rlimits)
    if flux_mode.real:
        # A direct step is not a flux batch job; the real bindings' own
        # from_command + apply_options are its reference.
        nested = CASES[name][1] is NESTED
        theirs = normalized(dry_run(script, tmp_path), rlimits) if nested else ours
        assert ours == theirs
        if os.environ.get("MAESTRO_FLUX_RECORD"):
            everything = recorded()
            everything[name] = theirs
            RECORDING.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")
    assert ours == recorded()[name]


def test_every_option_of_the_table_is_exercised():
    from maestro_flux.model.option_table import OPTIONS

    used = {key for options, _ in CASES.values() for key in options}
    # env, env-remove, env-file and flags do not reach the jobspec's recorded
    # parts; tests/test_precedence.py checks them.
    assert set(OPTIONS) - used == {"env", "env-remove", "env-file", "flags"}
