"""Which options a step gets, and from where.

From lowest to highest precedence (docs/pages/templates-and-profiles.md, "Precedence"):

1. the ``#flux:`` directives of the step's template;
2. the batch block's flux batch options;
3. the step's profile (the first ``steps`` pattern that matches its name);
4. the step's own Maestro keys (nodes, procs, cores per task, gpus, walltime,
   priority, exclusive).

Layers merge key by key by each option's kind (see flux_options), which is how
the flux CLI's own options override a script's directives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from maestro_flux.model import option_table as flux_options
from maestro_flux.model.batch_options import BatchOptions, Profile
from maestro_flux.model.errors import TemplateError
from maestro_flux.model.step_keys import step_options


@dataclass(frozen=True)
class StepChoice:
    """The profile, template and nested default that apply to one step."""

    profile: Profile | None
    template: str | None  # the template file as written in the spec
    nested_default: bool | None

    @property
    def profile_name(self) -> str:
        return self.profile.name if self.profile else "batch"


def choose(options: BatchOptions, step_name: str) -> StepChoice:
    """The profile a step gets, and the template and nested default it implies."""
    profile = options.profile_for(step_name)
    template = (profile.file if profile else None) or options.defaults.file
    nested = profile.nested if profile and profile.nested is not None else options.nested
    return StepChoice(profile, template, nested)


def directive_options(directives: Iterable[tuple[int, list[str]]],
                      source: str) -> dict[str, Any]:
    """The options a rendered script's ``#flux:`` directives ask for, in order.

    Args:
        directives: ``(line, arguments)`` of each directive (broker.directives reads them).
        source: the template's path, for error messages.
    """
    found: dict[str, Any] = {}
    for lineno, args in directives:
        try:
            flux_options.merge_into(found, flux_options.from_args(args))
        except ValueError as err:
            raise TemplateError(f"template {source} line {lineno}: {err}") from None
    return found


def effective_options(directives: Mapping[str, Any], options: BatchOptions,
                      choice: StepChoice, run: Mapping[str, Any]) -> dict[str, Any]:
    """All four layers merged: the options a step is submitted with."""
    step = step_options(run)
    profile = choice.profile.options if choice.profile else {}
    return flux_options.layered(directives, options.defaults.options, profile, step)
