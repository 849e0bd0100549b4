"""Every flux batch option in the batch block reaches the jobspec exactly as
``flux batch`` would put it there, on every supported flux-core.

Each case writes a step script whose header holds the effective directives,
then builds the jobspec through the adapter. The result must equal what a real
``flux batch --dry-run`` of the mode's version made of the same script (recorded
in tests/recordings/VERSION/batch-options.json); in real-broker mode it is also
compared with a live ``flux batch --dry-run`` of the written script. Where the
bindings have ``from_batch``/``apply_options``, the jobspec built with them and
the one built with the older calls (broker/apply_options.py) must be the same.

Set MAESTRO_FLUX_RECORD=1 in real-broker mode to rewrite the recording of the
version on PATH.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess

import pytest
from brokers import RECORDED_VERSIONS, RECORDINGS
from helpers import make_step

from maestro_flux.broker import apply_options, bindings
from maestro_flux.maestro.adapter import FluxAdapter

pytestmark = pytest.mark.every_version
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
    # Later options win, in flux batch's order: setattr after time-limit and cwd.
    "setattr_overrides": ({"time-limit": "10m", "setattr": {"system.duration": 5,
                                                            "user.note": "x"}}, NESTED),
    "direct_everything": ({"time-limit": "2m", "bank": "b", "job-name": "n",
                           "output": "o.txt", "dependency": ["afterany:123"],
                           "setopt": {"verbose": 1}, "rlimit": ["-*", "core=0"],
                           "add-file": ["data.txt"]}, {"cmd": "echo plain"}),
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
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data.txt").write_text("some data\n")
    os.chmod(tmp_path / "data.txt", 0o644)
    # portable: false keeps the queue on this broker without named queues, as flux batch does.
    adapter = FluxAdapter(type="flux", portable=False, **options)
    step = make_step(name=name, **run)
    _, script, _ = adapter.write_script(str(tmp_path), step)
    text = open(script).read()
    assert "cannot be submitted" not in text, text
    jobspec, _, _ = adapter.planner.jobspec(step, script, str(tmp_path))
    return json.loads(jobspec.dumps()), script


def without_times(jobspec: dict) -> dict:
    """A jobspec with begin-time dependencies' timestamps (now + 1h) blanked."""
    doc = copy.deepcopy(jobspec)
    for dep in doc["attributes"]["system"].get("dependencies", []):
        if dep["scheme"] == "begin-time":
            dep["value"] = "<time>"
    return doc


def dry_run(script: str, cwd) -> dict:
    env = {k: v for k, v in os.environ.items() if k != bindings.BINDINGS_ENV}
    done = subprocess.run(["flux", "batch", "--dry-run", script], capture_output=True,
                          text=True, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def batch_knows(option: str) -> bool:
    """Whether the flux batch on PATH has ``--OPTION`` (0.61's has no --bank)."""
    done = subprocess.run(["flux", "batch", "--help"], capture_output=True, text=True)
    return f"--{option}=" in done.stdout


def batch_reads_add_file_perms(tmp_path) -> bool:
    """Whether flux batch reads ``--add-file=NAME:PERMS=PATH`` (0.61's takes
    ``NAME:PERMS`` as the whole name)."""
    script = tmp_path / "probe.sh"
    script.write_text(f"#!/bin/sh\n#flux: -n1 --add-file=probe:0600={script}\ntrue\n")
    return "probe" in dry_run(str(script), tmp_path)["attributes"]["system"]["files"]


def as_maestro_flux_reads_it(script: str, tmp_path) -> dict:
    """``flux batch --dry-run`` of the script, and where the flux batch on PATH is older
    than an option's meaning in maestro-flux (the same on every version, see
    docs/pages/compatibility.md), that meaning applied to its answer."""
    text = open(script).read()
    missing = {}
    if not batch_knows("bank"):
        found = re.search(r"^#flux: --bank=(\S+)\n", text, re.M)
        if found:
            missing["system.bank"] = found.group(1)
            text = text.replace(found.group(0), "")
    plain = tmp_path / "as-this-flux-batch-reads-it.sh"
    plain.write_text(text)
    theirs = dry_run(str(plain), tmp_path)
    system = theirs["attributes"]["system"]
    for key, value in missing.items():
        system[key.split(".")[1]] = value
    if not batch_reads_add_file_perms(tmp_path):
        for name in [n for n in system.get("files", {}) if re.fullmatch(r".+:[0-7]+", n)]:
            system["files"][name.rsplit(":", 1)[0]] = system["files"].pop(name)
    return theirs


def record(flux_mode, name: str, jobspec: dict) -> None:
    path = RECORDINGS / flux_mode.version / "batch-options.json"
    everything = json.loads(path.read_text()) if path.exists() else {}
    everything[name] = jobspec
    path.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_jobspec_is_what_flux_batch_made_of_it(flux_mode, tmp_path, name):
    jobspec, script = built(name, tmp_path)
    rlimits = "rlimit" in CASES[name][0]
    ours = normalized(jobspec, rlimits)
    if flux_mode.real:
        # A direct step is not a flux batch job; the real bindings' own
        # from_command and setters are its reference.
        nested = CASES[name][1] is NESTED
        theirs = (normalized(as_maestro_flux_reads_it(script, tmp_path), rlimits) if nested
                  else ours)
        assert ours == theirs
        if os.environ.get("MAESTRO_FLUX_RECORD"):
            record(flux_mode, name, theirs)
    assert ours == flux_mode.recording("batch-options")[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_older_calls_build_the_same_jobspec(flux_mode, tmp_path, monkeypatch, name):
    """On bindings with from_batch/apply_options: the same case built with them and
    with the calls flux-python 0.61-0.83 have (from_batch_command, from_command and
    setters, driven by the option table) gives one jobspec."""
    JobspecV1 = bindings.bindings().job.JobspecV1
    if not apply_options.has_modern_api(JobspecV1):
        pytest.skip(f"flux-core {flux_mode.version}'s bindings have only the older calls, "
                    "which test_jobspec_is_what_flux_batch_made_of_it checks")
    newer, _ = built(name, tmp_path / "newer")
    monkeypatch.setattr(apply_options, "has_modern_api", lambda cls: False)
    older, _ = built(name, tmp_path / "older")
    for doc, where in ((newer, "newer"), (older, "older")):
        # Only the workspace differs between the two builds.
        text = json.dumps(doc).replace(str(tmp_path / where), "<workspace>")
        doc.clear()
        doc.update(json.loads(text))
    assert without_times(older) == without_times(newer)


def test_every_option_of_the_table_is_exercised():
    from maestro_flux.model.option_table import OPTIONS

    used = {key for options, _ in CASES.values() for key in options}
    # env, env-remove, env-file and flags do not reach the jobspec's recorded
    # parts; tests/test_precedence.py checks them.
    assert set(OPTIONS) - used == {"env", "env-remove", "env-file", "flags"}


def test_every_jobspec_keyword_of_the_table_has_a_setter():
    """The older path is driven by the option table: each keyword an option names is
    applied by a setter or taken by from_batch_command itself."""
    from maestro_flux.model.option_table import OPTIONS

    keywords = {option.jobspec for option in OPTIONS.values() if option.jobspec}
    assert keywords - set(apply_options.SETTERS) - set(apply_options.FACTORY) == set()


def test_the_table_keywords_are_from_batch_keywords_as_recorded():
    """Each keyword is a parameter of from_batch or apply_options, in every recorded
    version that has them."""
    from maestro_flux.model.option_table import OPTIONS

    keywords = {option.jobspec for option in OPTIONS.values() if option.jobspec}
    checked = 0
    for version in RECORDED_VERSIONS:
        api = json.loads((RECORDINGS / version / "bindings_api.json").read_text())["JobspecV1"]
        if api["from_batch"] and api["apply_options"]:
            accepted = set(re.findall(r"(\w+)=", api["from_batch"] + api["apply_options"]))
            assert keywords | set(apply_options.SETTERS) <= accepted, version
            checked += 1
    assert checked, "no recorded version has from_batch"
