"""``maestro-flux render``: each step's script and jobspec, with no broker.

The study is staged into a temporary directory exactly as Maestro would stage
it, and every step goes through the adapter's own code (template, precedence,
header, jobspec). Where the bindings are missing, the scripts are still shown
and the jobspec is reported as not checked, with the reason.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable
from typing import TextIO

import yaml

from maestro_flux.broker import jobspec as jobspecs
from maestro_flux.broker import queues as queue_lookup
from maestro_flux.cli.spec_check import check_spec
from maestro_flux.maestro import gate
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.graph import StagedStep, staged_steps
from maestro_flux.model.errors import BindingsMissing, MaestroFluxError
from maestro_flux.model.precedence import choose
from maestro_flux.model.queues import bank_policy, queue_policy


def _jobspec_text(adapter: FluxAdapter, staged: StagedStep, script: str, fmt: str,
                  full_env: bool) -> str:
    jobspec, urgency, flags = adapter.planner.jobspec(staged.step, script, staged.workspace)
    document = json.loads(jobspecs.jobspec_json(jobspec))
    system = document["attributes"]["system"]
    if not full_env and "environment" in system:
        names = len(system["environment"])
        system["environment"] = f"<{names} variables; --full-env shows them>"
    request = {"urgency": urgency, "flags": flags, "jobspec": document}
    if fmt == "json":
        return json.dumps(request, indent=2)
    return yaml.safe_dump(request, sort_keys=False, width=100)


def _one_step(adapter: FluxAdapter, staged: StagedStep, fmt: str, full_env: bool,
              out: TextIO) -> bool:
    profile = choose(adapter.batch_options, staged.name).profile_name
    print(f"==> step {staged.name} (profile: {profile})", file=out)
    print(f"broker: {adapter.broker_choice.describe()}", file=out)
    _, script, _ = adapter.write_script(staged.workspace, staged.step)
    with open(script) as handle:
        text = handle.read()
    print(f"--- script {os.path.basename(script)}", file=out)
    out.write(text)
    if "this step cannot be submitted" in text:
        print("--- jobspec: none, the step cannot be submitted (see the script above)", file=out)
        return False
    try:
        body = _jobspec_text(adapter, staged, script, fmt, full_env)
    except BindingsMissing as err:
        # The #flux: lines above are the request the jobspec would be built from.
        print(f"--- jobspec: not built, so not checked by the bindings (the #flux: lines "
              f"above are what it would ask for): {err}", file=out)
        return True
    except (MaestroFluxError, ValueError, TypeError, OSError) as err:
        print(f"--- jobspec: refused: {err}", file=out)
        return False
    print(f"--- jobspec ({fmt})", file=out)
    out.write(body.rstrip("\n") + "\n")
    return True


def _broker_facts(adapter: FluxAdapter, out: TextIO) -> None:
    """What the broker at hand does with the spec's queue and bank (asked only if it
    names one; without a broker, says it could not check)."""
    options = adapter.batch_options
    layers = [options.defaults, *options.profiles.values()]
    if not any(layer.options.get(key) for layer in layers for key in ("queue", "bank")):
        return
    broker = adapter.broker()
    queues = broker.queues()
    print(f"queues on {broker.label}: {queues.describe()}: "
          f"{queue_policy(queues, options.portable)}", file=out)
    for bank in sorted({layer.options["bank"] for layer in layers if layer.options.get("bank")}):
        try:
            accounting, how = broker.call(queue_lookup.accounting)
        except (MaestroFluxError, OSError) as err:
            accounting, how = None, f"cannot ask {broker.label}: {err}"
        print(f"bank: {bank_policy(bank, accounting, broker.label, how)}", file=out)


def _selected(steps: Iterable[StagedStep], wanted: str | None) -> list[StagedStep]:
    chosen = [s for s in steps if wanted is None or wanted in (s.name, s.step.real_name)]
    if wanted and not chosen:
        raise MaestroFluxError(f"no step named '{wanted}' in this study")
    return chosen


def render_study(path: str, step: str | None = None, fmt: str = "yaml",
                 full_env: bool = False, out: TextIO = sys.stdout) -> int:
    """Print every (or one) step's script and jobspec; 1 if any step cannot be submitted."""
    spec = check_spec(path)  # a bad spec stops here, with its one line
    adapter = FluxAdapter(**dict(spec.batch))
    adapter.study.spec_root = os.path.dirname(os.path.abspath(path))
    with tempfile.TemporaryDirectory(prefix="maestro-flux-render-") as tmp:
        steps = _selected(staged_steps(spec, path, tmp), step)
        _broker_facts(adapter, out)
        print(f"conductor: {gate.conductor_line(adapter.batch_options)[1]}", file=out)
        results = [_one_step(adapter, s, fmt, full_env, out) for s in steps]
    return 0 if all(results) else 1
