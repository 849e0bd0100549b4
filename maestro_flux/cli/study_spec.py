"""Staging a study's steps as ``maestro run`` does, for commands that look at a
study without running it (``render``); spec_check.py reads and checks the spec."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from maestro_flux.maestro.maestro_imports import import_maestro


@dataclass(frozen=True)
class StagedStep:
    """One expanded step (parameters applied) and its workspace."""

    name: str
    step: Any
    workspace: str


def staged_steps(spec: Any, path: str, out_dir: str) -> Iterator[StagedStep]:
    """Expand the study into ``out_dir`` the way Maestro's conductor does."""
    Conductor = import_maestro("maestrowf.conductor").Conductor
    Study = import_maestro("maestrowf.datastructures.core").Study
    Variable = import_maestro("maestrowf.datastructures.environment").Variable

    environment = spec.get_study_environment()
    environment.add(Variable("SPECROOT", os.path.dirname(os.path.abspath(path))))
    study = Study(spec.name, spec.description, studyenv=environment,
                  parameters=spec.get_parameters(), steps=spec.get_study_steps(),
                  out_path=out_dir)
    quiet = logging.getLogger("maestrowf")
    level, quiet.level = quiet.level, logging.WARNING  # Maestro logs every step at INFO
    try:
        study.setup_workspace()
        study.configure_study(dry_run=True)
        study.setup_environment()
        _, dag = study.stage()
        study.store_metadata()
    finally:
        quiet.level = level
    Conductor.store_batch(out_dir, dict(spec.batch))
    for name in dag.topological_sort():
        if name == "_source":
            continue
        record = dag.values[name]
        os.makedirs(record.workspace.value, exist_ok=True)
        yield StagedStep(name, record.step, record.workspace.value)
