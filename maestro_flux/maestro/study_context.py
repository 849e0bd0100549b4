"""What the adapter can learn about the study around a step workspace.

Maestro hands an adapter only the batch block and each step, so the spec's
directory (for relative template paths) and a step's parameter values are read
from the study's output directory, where Maestro stores them: ``batch.info``
marks the study root, ``meta/study/env.pkl`` holds the study environment
(with $(SPECROOT)), and ``meta/*.yaml`` the parameter combinations.

Those files are read once per study: :class:`StudyContext` keeps what they
said, and each StudyState (study_state.py) owns one.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from maestro_flux.model.bounded import Bounded
from maestro_flux.model.errors import TemplateError

LOGGER = logging.getLogger(__name__)
STUDY_MARKER = "batch.info"
#: Study roots remembered per study: one, unless studies share a batch block.
MAX_ROOTS = 16


def study_root(workspace: str) -> Path | None:
    """The study output directory holding ``workspace`` (None outside a study)."""
    path = Path(workspace).resolve()
    for candidate in (path, *path.parents[:4]):
        if (candidate / STUDY_MARKER).is_file():
            return candidate
    return None


def read_spec_root(root: Path) -> Path | None:
    """$(SPECROOT) as Maestro stored it in the study at ``root`` (None if it cannot tell)."""
    try:
        with open(root / "meta" / "study" / "env.pkl", "rb") as handle:
            study = pickle.load(handle)  # Maestro's own file, written by maestro run
        variable = study.environment.find("SPECROOT")
        return Path(variable.value) if variable is not None else None
    except Exception as err:  # an older or foreign layout: fall back to the cwd
        LOGGER.debug("no SPECROOT in %s: %s", root, err)
        return None


def resolve_template(file: str, spec_dir: str | Path | None) -> str:
    """An absolute template path: relative paths resolve against the spec's directory
    ``spec_dir`` (when known), then the current one.

    Raises TemplateError naming every place looked in, when the file is missing.
    """
    path = Path(os.path.expanduser(file))
    candidates = [path] if path.is_absolute() else []
    if not candidates:
        candidates = [Path(spec_dir) / path] if spec_dir else []
        if Path.cwd() / path not in candidates:
            candidates.append(Path.cwd() / path)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    looked = ", ".join(str(c) for c in candidates)
    raise TemplateError(f"batch file '{file}': no such template (looked for {looked})")


class _MetaLoader(yaml.SafeLoader):
    """Safe loading, plus the OrderedDict tag Maestro's yaml.dump writes for labels."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    (pairs,) = loader.construct_sequence(node, deep=True)
    return {key: value for key, value in pairs}


_MetaLoader.add_constructor(
    "tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)


def read_combinations(root: Path) -> tuple[dict, dict]:
    """(used parameters per step, parameter combinations) of the study at ``root``."""
    try:
        meta = yaml.load((root / "meta" / "metadata.yaml").read_text(), _MetaLoader) or {}
        params = yaml.load((root / "meta" / "parameters.yaml").read_text(), _MetaLoader) or {}
    except (OSError, yaml.YAMLError):
        return {}, {}
    return meta.get("used_parameters") or {}, params


def _label_string(combo: dict, names: list[str]) -> str:
    return ".".join(str(combo["labels"].get(f"$({name}.label)", "")) for name in names)


def parameters_of(step_name: str, used: dict, combos: dict) -> dict[str, str]:
    """A step's Maestro parameter values, matched the way Maestro names the step."""
    for base in sorted(used, key=len, reverse=True):
        if not step_name.startswith(base + "_") or not used[base]:
            continue
        names = sorted(used[base])
        suffix = step_name[len(base) + 1:]
        for combo in combos.values():
            if _label_string(combo, names) == suffix:
                return {name: combo["params"].get(f"$({name})") for name in names}
    return {}


@dataclass
class StudyContext:
    """What one study's output directory says, read once per study root."""

    _spec_roots: Bounded[Path, Path | None] = field(default_factory=lambda: Bounded(MAX_ROOTS))
    _combinations: Bounded[Path, tuple[dict, dict]] = field(
        default_factory=lambda: Bounded(MAX_ROOTS))

    def spec_root(self, workspace: str | None) -> Path | None:
        """The directory of the study's spec file, if the study's output tells it."""
        root = study_root(workspace) if workspace else None
        if root is None:
            return None
        if root not in self._spec_roots:
            self._spec_roots.put(root, read_spec_root(root))
        return self._spec_roots.get(root)

    def template(self, file: str, workspace: str | None, known_root: str | None = None) -> str:
        """``file`` resolved (resolve_template) against ``known_root`` when the caller
        knows the spec's directory, as ``render`` does, else the study's own."""
        return resolve_template(file, known_root or self.spec_root(workspace))

    def step_parameters(self, workspace: str, step_name: str) -> dict[str, str]:
        """A step's Maestro parameter values ({} outside a study)."""
        root = study_root(workspace)
        if root is None:
            return {}
        combinations = self._combinations.get(root)
        if combinations is None:
            combinations = self._combinations.put(root, read_combinations(root))
        return parameters_of(step_name, *combinations)
