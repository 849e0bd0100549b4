"""``maestro-flux doctor [spec.yaml]``: one screen that says whether submission works.

Each check prints one line, ``ok``, ``warn`` or ``FAIL``, and a failing line
says what to do. The exit status is 1 when a submission would fail.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from maestro_flux.broker import bindings, remote
from maestro_flux.broker import uri as uris
from maestro_flux.broker.connection import Broker
from maestro_flux.model.batch_options import BatchOptions, parse_batch_block
from maestro_flux.model.errors import MaestroFluxError

ACCOUNTING_PLUGIN = "mf_priority"


@dataclass
class Report:
    """The lines printed so far and whether any failed."""

    out: Callable[[str], None] = print
    failed: bool = False
    facts: dict[str, Any] = field(default_factory=dict)

    def line(self, status: str, label: str, text: str) -> None:
        self.failed |= status == "FAIL"
        self.out(f"{status:>4}  {label:<10} {text}")


def _spec_options(path: str | None, report: Report) -> BatchOptions | None:
    if path is None:
        report.line("ok", "spec", "none given: checking FLUX_URI or the system instance")
        return BatchOptions()
    try:
        with open(path) as handle:
            block = (yaml.safe_load(handle) or {}).get("batch") or {}
    except (OSError, yaml.YAMLError) as err:
        report.line("FAIL", "spec", f"{path}: cannot read it ({uris.one_line(err)})")
        return None
    if block.get("type") != "flux":
        report.line("FAIL", "spec", f"{path}: batch.type is {block.get('type')!r}: set "
                                    "'type: flux' to submit with maestro-flux")
        return None
    try:
        options = parse_batch_block(block)
    except MaestroFluxError as err:
        report.line("FAIL", "spec", f"{path}: {err}")
        return None
    report.line("ok", "spec", f"{path}: batch block is valid")
    return options


def _bindings(report: Report) -> bool:
    try:
        module = bindings.bindings()
    except MaestroFluxError as err:
        report.line("FAIL", "bindings", str(err))
        return False
    version = bindings.loaded_version(module) or "unknown version"
    report.facts["bindings"] = version
    report.line("ok", "bindings", f"{module.__name__} {version} imports ({module.__file__})")
    if version != "unknown version" and bindings.below_floor(version):
        report.line("warn", "floor", f"flux-python {version} is older than {bindings.FLOOR}, "
                                     "the oldest version maestro-flux is tested on")
    return True


def _connect(options: BatchOptions, report: Report) -> Broker | None:
    choice = uris.choose_broker(options.flux_uri, uri_file=options.flux_uri_file)
    report.line("ok", "uri", choice.describe())
    broker = Broker(choice.uri, options.connect_timeout)
    if choice.uri and uris.needs_resolving(choice.uri):
        report.out(f"            resolving {choice.uri} with Flux's resolver...")
        try:
            report.line("ok", "resolved", uris.resolve(choice.uri).describe())
        except MaestroFluxError as err:
            report.line("FAIL", "resolved", str(err))
            return None
    target = broker.target() if choice.uri else None
    if remote.is_ssh(target):
        report.out(f"            connecting over ssh to {remote.ssh_host(target)} "
                   f"(timeout {options.connect_timeout:g}s; FLUX_SSH="
                   f"{os.environ.get('FLUX_SSH', 'ssh')}, FLUX_SSH_RCMD="
                   f"{os.environ.get('FLUX_SSH_RCMD', 'flux on the remote PATH')})...")
    try:
        broker.handle()
    except MaestroFluxError as err:
        report.line("FAIL", "connect", str(err))
        return None
    report.line("ok", "connect", f"connected to {target or choice.describe()}")
    return broker


def _instance(broker: Broker, report: Report) -> tuple[list[str], bool]:
    """Version, level, size; returns (queues, flux-accounting loaded)."""
    def attr(name: str) -> str:
        return broker.call(lambda h: bindings.attr(h, name))

    version = attr("version")  # the broker's libflux-core, as 'flux version' prints it
    client = report.facts.get("bindings", "")
    same = client == version
    report.line("ok" if same else "warn", "version",
                f"broker {version}, bindings {client}" + ("" if same else
                f": they differ; install flux-python=={version} to match the broker"))
    queues = sorted(broker.call(bindings.config).get("queues") or {})
    plugins = broker.call(bindings.jobtap_plugins)
    accounting = any(ACCOUNTING_PLUGIN in name for name in plugins)
    role = "guest (urgency capped at 16)" if broker.is_guest() else "owner"
    report.line("ok", "instance", f"level {attr('instance-level')}, size {attr('size')} "
                f"broker(s), you are the {role}")
    report.line("ok", "queues", ", ".join(queues) if queues else "none configured "
                "(one anonymous queue)")
    report.line("ok", "banks", "flux-accounting is loaded" if accounting else
                "flux-accounting is not loaded (no banks)")
    return queues, accounting


def _spec_targets(options: BatchOptions, queues: list[str], accounting: bool,
                  report: Report) -> None:
    if options.queue and options.queue not in queues:
        fix = (f"set batch.queue to one of {', '.join(queues)}" if queues else
               "remove batch.queue: this instance has no named queues")
        report.line("FAIL", "queue", f"'{options.queue}' does not exist here: {fix}")
    elif options.queue:
        report.line("ok", "queue", f"'{options.queue}' exists")
    elif queues:
        report.line("warn", "queue", f"batch.queue is not set; this instance has queues "
                                     f"{', '.join(queues)}: steps go to its default queue")
    if options.bank and not accounting:
        report.line("warn", "bank", f"'{options.bank}' is ignored: this instance does not "
                                    "run flux-accounting")
    elif options.bank:
        report.line("ok", "bank", f"'{options.bank}' will be checked by flux-accounting at "
                                  "submission ('flux account view-user $USER' lists yours)")


def doctor(spec: str | None = None, out: Callable[[str], None] = print) -> int:
    """Run every check; returns 0 when submission would work, else 1."""
    logging.getLogger("maestro_flux").addHandler(logging.NullHandler())  # the report says it
    report = Report(out)
    options = _spec_options(spec, report)
    if options is None or not _bindings(report):
        return 1
    broker = _connect(options, report)
    if broker is None:
        return 1
    try:
        queues, accounting = _instance(broker, report)
    except (MaestroFluxError, OSError) as err:
        report.line("FAIL", "instance", f"the broker did not answer: {err}")
        return 1
    _spec_targets(options, queues, accounting, report)
    out("submission should work" if not report.failed else "submission would fail: see FAIL")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(doctor(sys.argv[1] if len(sys.argv) > 1 else None))
