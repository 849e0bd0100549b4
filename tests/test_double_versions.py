"""The double answers as each recorded flux-core version does: the bindings calls
that exist and their signatures, broker attributes, the job-list request forms,
and its own job-id encoding. Real Flux is the double's only source of trust, so
each check compares it with tests/recordings/VERSION/."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import subprocess
import sys

import pytest
from brokers import RECORDED_VERSIONS, RECORDINGS, ROOT, TESTS
from fluxdouble import jobid as double_jobid
from fluxdouble import versions


def recorded(version: str, name: str) -> dict:
    return json.loads((RECORDINGS / version / f"{name}.json").read_text())


@pytest.fixture(params=RECORDED_VERSIONS)
def version(request, monkeypatch):
    monkeypatch.setenv(versions.ENV, request.param)
    return request.param


def _parameters(signature: str) -> list[tuple[str, str, str | None]]:
    """(name, kind, default source) of a recorded signature text; annotations dropped."""
    args = ast.parse(f"def f{signature}: pass").body[0].args
    found = []
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        found.append((arg.arg, "positional", default and ast.unparse(default)))
    if args.vararg:
        found.append((args.vararg.arg, "*args", None))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        found.append((arg.arg, "keyword", default and ast.unparse(default)))
    if args.kwarg:
        found.append((args.kwarg.arg, "**kwargs", None))
    return found


def _signature(func) -> str:
    return str(inspect.signature(func)).split(" -> ")[0]


def _comparable(params: list, uid: int) -> list:
    # job_list's userid default is os.getuid() when flux.job is imported: the
    # recording ran as uid 0 (broker_attrs.json "getuid").
    return [(n, k, str(uid) if n == "userid" else d) for n, k, d in params]


def test_bindings_calls_and_signatures_match_the_recording(version):
    api = recorded(version, "bindings_api")
    job = importlib.import_module("fluxdouble.job")
    uid = recorded(version, "broker_attrs")["getuid"]
    for name, signature in api["JobspecV1"].items():
        method = getattr(job.JobspecV1, name, None)
        assert (method is not None) == (signature is not None), f"JobspecV1.{name}"
        if signature:
            assert _parameters(_signature(method)) == _parameters(signature), name
    for name, signature in api["flux.job"].items():
        if name in job.NOT_MODELLED:
            continue
        ours = _parameters(_signature(getattr(job, name)))
        assert _comparable(ours, os.getuid()) == _comparable(_parameters(signature), uid), name
    # the journal's consumer exists in the bindings of the versions that have it (0.68 on)
    assert hasattr(job, "JournalConsumer") == api["flux.job.JournalConsumer"]
    assert hasattr(importlib.import_module("fluxdouble.uri"), "FluxURIResolver") == \
        api["flux.uri.FluxURIResolver"]


def test_what_the_double_does_not_model_is_unused_by_maestro_flux():
    job = importlib.import_module("fluxdouble.job")
    sources = "\n".join(p.read_text() for p in (ROOT / "maestro_flux").rglob("*.py"))
    for name in job.NOT_MODELLED:
        assert name not in sources, name


def test_the_double_imports_nothing_from_maestro_flux():
    code = ("import sys, fluxdouble, fluxdouble.job, fluxdouble.server, fluxdouble.uri, "
            "fluxdouble.cli.base, fluxdouble.launcher; "
            "print(sorted(m for m in sys.modules if m.startswith('maestro_flux')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(TESTS)), check=True)
    assert done.stdout.strip() == "[]"
    for path in (TESTS / "fluxdouble").rglob("*.py"):
        assert not re.search(r"^\s*(from|import) maestro_flux", path.read_text(), re.M), path


def test_job_ids_encode_and_parse_as_recorded(version):
    forms = recorded(version, "jobid_forms")
    number = forms["int"]
    jobid = double_jobid.JobID(number)
    for form in ("dec", "hex", "dothex", "kvs", "f58", "f58plain"):
        assert getattr(jobid, form) == forms[form], form
        assert double_jobid.JobID(forms[form]) == number, form
    assert str(jobid) == forms["str"]
    error = recorded(version, "errors")["jobid_parse_garbage"]["error"]["str"]
    with pytest.raises(ValueError, match=error):
        double_jobid.JobID("not-a-job")


@pytest.fixture
def double_broker(version, tmp_path, monkeypatch):
    """A double broker playing ``version``, and a handle on it."""
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    proc = subprocess.Popen([sys.executable, "-m", "fluxdouble", f"--rundir={tmp_path}",
                             "--test-size=2", f"--flux-version={version}"], env=env,
                            stdout=subprocess.PIPE, text=True)
    uri = proc.stdout.readline().strip()
    import fluxdouble

    yield fluxdouble.Flux(uri)
    proc.terminate()
    proc.wait(timeout=10)


def test_broker_attributes_match_the_recording(version, double_broker):
    attrs = recorded(version, "broker_attrs")
    for name in ("version", "instance-level", "size", "rank"):
        assert double_broker.attr_get(name) == attrs[name], name
    assert double_broker.attr_get("security.owner") == str(os.getuid())
    for name in ("jobid", "parent-uri"):  # set on nested instances only
        error = attrs[name]["error"]
        with pytest.raises(OSError) as info:
            double_broker.attr_get(name)
        assert (type(info.value).__name__, str(info.value)) == (error["type"], error["str"])


def test_job_list_request_forms_are_accepted_as_recorded(version, double_broker, tmp_path):
    job = importlib.import_module("fluxdouble.job")
    spec = job.JobspecV1.from_command(["true"])
    spec.cwd, spec.environment = str(tmp_path), {}
    submitted = job.submit(double_broker, spec)
    forms = {"constraint_userid": {"constraint": {"and": [{"userid": [os.getuid()]}]}},
             "userid_states_results": {"userid": os.getuid(), "states": 0, "results": 0}}
    for form, answer in recorded(version, "bindings_api")["job-list.list requests"].items():
        payload = {"max_entries": 0, "attrs": ["state"], **forms[form]}
        jobs = double_broker.rpc("job-list.list", payload).get()["jobs"]
        assert answer["accepted"] and [e["id"] for e in jobs] == [int(submitted)], form
