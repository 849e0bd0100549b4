"""Reading a Maestro study spec and staging its steps, as ``maestro run`` does,
for commands that look at a study without running it (``render``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from maestro_flux.maestro.maestro_imports import import_maestro
from maestro_flux.model.errors import MaestroFluxError


@dataclass(frozen=True)
class StagedStep:
    """One expanded step (parameters applied) and its workspace."""

    name: str
    step: Any
    workspace: str


def load_spec(path: str) -> Any:
    """Maestro's own reading and validation of a spec; one-line errors."""
    YAMLSpecification = import_maestro("maestrowf.specification").YAMLSpecification
    if not os.path.isfile(path):
        raise MaestroFluxError(f"{path}: no such study specification")
    try:
        return YAMLSpecification.load_specification(path)
    except Exception as err:  # Maestro raises many kinds; the message is what matters
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MaestroFluxError(f"{path}: Maestro rejects this spec: {first}") from None


def batch_block(spec: Any, path: str) -> dict:
    """The spec's batch block, which must select this adapter."""
    batch = dict(spec.batch or {})
    if batch.get("type") != "flux":
        raise MaestroFluxError(f"{path}: batch.type is {batch.get('type')!r}, not 'flux'")
    return batch


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
