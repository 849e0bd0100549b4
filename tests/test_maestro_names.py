"""The Maestro names the pipeline relies on exist in the installed Maestro.

When a Maestro upgrade removes or renames one, this fails and names it; the
pipeline then turns itself off (one submit per step) until maestro_names.py and
its TESTED_VERSIONS are brought up to date.
"""

from __future__ import annotations

import pytest

from maestro_flux.maestro import maestro_names, pipeline

pytestmark = pytest.mark.unit


def test_every_maestro_name_the_pipeline_uses_exists():
    assert maestro_names.missing() == []


def test_the_installed_maestro_is_one_the_pipeline_was_tested_with():
    assert maestro_names.maestro_version() in maestro_names.TESTED_VERSIONS


def test_a_missing_name_turns_the_pipeline_off_and_is_named(monkeypatch):
    monkeypatch.delenv(pipeline.SWITCH, raising=False)
    monkeypatch.setattr(maestro_names, "GRAPH_ATTRIBUTES",
                        (*maestro_names.GRAPH_ATTRIBUTES, "_gone_in_a_later_maestro"))
    assert maestro_names.missing() == ["ExecutionGraph._gone_in_a_later_maestro"]
    assert pipeline.why_off() == "this Maestro lacks ExecutionGraph._gone_in_a_later_maestro"
