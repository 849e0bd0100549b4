"""Batch script templates: sandboxed Jinja2 with StrictUndefined, one-line
errors naming the file (and line), the colon-less '#flux' warning, template
variables, relative paths and the directives shown in the written script."""

from __future__ import annotations

import logging

import pytest
from helpers import make_step

from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_context import resolve_template
from maestro_flux.model.errors import TemplateError


def write(tmp_path, text: str, run: dict | None = None, name: str = "t.sh.j2", **batch) -> str:
    (tmp_path / name).write_text(text)
    adapter = FluxAdapter(type="flux", file=str(tmp_path / name), **batch)
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    step = make_step(name="s", **(run or {"cmd": "echo run-me"}))
    _, script, _ = adapter.write_script(str(workspace), step)
    return open(script).read()


def problem(text: str) -> str:
    lines = [line for line in text.splitlines() if "cannot be submitted" in line]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("template, expected", [
    ("#!/bin/sh\necho no command here\n", "never uses {{ maestro_command }}"),
    ("#!/bin/sh\n{% if x %}\n{{ maestro_command }}\n", "line 3: Unexpected end of template"),
    ("#!/bin/sh\n{{ maestro_command }}\n{{ nosuchvar }}\n",
     "undefined variable ('nosuchvar' is undefined)"),
    ("#!/bin/sh\n{{ maestro_command }}\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n",
     "refused by the sandbox"),
    ("#!/bin/sh\n#flux: --tasks-per-node=2\n{{ maestro_command }}\n",
     "line 2: 'tasks-per-node' is a flux submit/run option that flux batch does not accept"),
    ("#!/bin/sh\n#flux: --nodes=two\n{{ maestro_command }}\n",
     "line 2: 'nodes' must be a whole number, not 'two'"),
    ("#!/bin/sh\n#flux: -q early\n{{ maestro_command }}\n#flux: --queue=late\n",
     "line 4: orphan 'flux:' detected"),
], ids=["no-command", "syntax", "undefined", "sandbox", "submit-option", "bad-value",
        "orphan"])
def test_a_bad_template_is_one_line_naming_the_file(tmp_path, template, expected):
    line = problem(write(tmp_path, template))
    assert expected in line
    assert str(tmp_path / "t.sh.j2") in line


def test_a_template_error_refuses_only_that_step(flux_mode, tmp_path, caplog):
    text = write(tmp_path, "#!/bin/sh\n{{ nope }}{{ maestro_command }}\n")
    adapter = FluxAdapter(type="flux", file=str(tmp_path / "t.sh.j2"))
    step = make_step(name="s", cmd="echo run-me")
    record = adapter.submit(step, str(tmp_path / "ws" / "s.flux.sh"), str(tmp_path / "ws"))
    assert "undefined variable" in text
    assert record.submission_code.name == "ERROR"
    assert any("'nope' is undefined" in r.getMessage() for r in caplog.records)


def test_a_colonless_flux_line_is_warned_about_with_file_and_line(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    text = write(tmp_path, "#!/bin/bash\n#flux --nodes=1\n#flux: --queue=q\n"
                           "{{ maestro_command }}\n", name="colonless.sh.j2")
    warnings = [r.getMessage() for r in caplog.records if "no colon" in r.getMessage()]
    assert warnings == [f"maestro-flux: {tmp_path / 'colonless.sh.j2'} line 2: '#flux --nodes=1'"
                        " has no colon, so Flux treats it as a comment; write '#flux: --nodes=1'"]
    assert "#flux: --queue=q" in text


def test_variables_reach_the_template(tmp_path):
    template = ("#!/bin/bash\n# {{ step_name }} {{ workspace }} {{ profile }} "
                "{{ procs }} {{ nodes }} {{ walltime }} {{ params }} {{ flux_uri }}\n"
                "{{ maestro_command }}\n")
    text = write(tmp_path, template, {"cmd": "$(LAUNCHER) app", "procs": 4, "nodes": 2,
                                      "walltime": "00:10:00"}, flux_uri="local:///x/local-0")
    assert f"# s {tmp_path / 'ws'} batch 4 2 00:10:00 {{}} local:///x/local-0" in text
    assert "flux run -N2 -n4 -c1 app" in text


def test_the_written_script_shows_effective_and_template_directives(tmp_path):
    text = write(tmp_path, "#!/bin/bash\n#flux: --queue=tq\n#flux: -t 5\n"
                           "{{ maestro_command }}\n", queue="bq")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#flux: --queue=bq" in lines and "#flux: --time-limit=300s" in lines
    assert "# from template: --queue=tq" in lines and "# from template: -t 5" in lines
    assert "#flux: --queue=tq" not in lines
    assert lines[-1] == "echo run-me"


def test_relative_templates_resolve_against_the_spec_directory(tmp_path, monkeypatch):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "a.j2").write_text("{{ maestro_command }}")
    monkeypatch.chdir("/")
    assert resolve_template("tpl/a.j2", str(tmp_path)) == str(tmp_path / "tpl" / "a.j2")
    with pytest.raises(TemplateError) as info:
        resolve_template("tpl/missing.j2", str(tmp_path))
    assert str(info.value) == (f"batch file 'tpl/missing.j2': no such template (looked for "
                               f"{tmp_path / 'tpl/missing.j2'}, /tpl/missing.j2)")


def test_an_edited_template_is_read_again(tmp_path):
    first = write(tmp_path, "#!/bin/sh\n# one\n{{ maestro_command }}\n")
    import os
    import time

    later = time.time() + 5
    (tmp_path / "t.sh.j2").write_text("#!/bin/sh\n# two\n{{ maestro_command }}\n")
    os.utime(tmp_path / "t.sh.j2", (later, later))
    second = write(tmp_path, (tmp_path / "t.sh.j2").read_text())
    assert "# one" in first and "# two" in second
