"""``maestro-flux doctor [spec.yaml]``: one screen that says whether submission works.

A checklist: each check prints one line, ``ok``, ``warn``, ``FAIL`` or ``skip``
(it needs one that failed), and a failing line says what to do. The last line is
the verdict; the exit status is 1 when a submission would fail.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maestro_flux.broker import bindings, remote
from maestro_flux.broker import queues as queue_lookup
from maestro_flux.broker import uri as uris
from maestro_flux.broker.connection import Broker
from maestro_flux.cli import runner
from maestro_flux.cli.spec_check import check_spec
from maestro_flux.maestro import gate
from maestro_flux.model.batch_options import BatchOptions, parse_batch_block
from maestro_flux.model.errors import MaestroFluxError, StepError
from maestro_flux.model.queues import BrokerQueues, bank_policy, fit_queue, queue_policy

NO_FLUX_CORE = "flux-core is not installed here (no 'flux' on PATH)"
#: What doctor says of what only the instance owner may ask.
NOT_VISIBLE = "not visible to a guest"


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
        spec = check_spec(path)  # the check every command makes
    except MaestroFluxError as err:
        report.line("FAIL", "spec", str(err))
        return None
    report.line("ok", "spec", f"{path}: valid, {len(spec.study)} step(s), batch block valid")
    return parse_batch_block(dict(spec.batch))


def _flux_core(report: Report) -> bool:
    """Is flux-core here? Its ``flux`` command, or its library loaded by the bindings.
    Without it nothing can be submitted, but render and dry runs work."""
    flux = shutil.which("flux")
    if flux:
        report.line("ok", "flux-core", f"'flux' is {flux}")
        return True
    try:
        bindings.bindings()
    except MaestroFluxError:
        report.line("FAIL", "flux-core", f"{NO_FLUX_CORE}; {runner.INSTALL_FLUX}. Without "
                    "it, 'maestro-flux render SPEC' and 'maestro-flux run --dry-without-flux "
                    "SPEC' still work")
        return False
    report.line("ok", "flux-core", "the bindings load libflux-core; no 'flux' command on "
                                   "PATH (submission does not need it)")
    return True


def _bindings(report: Report, flux_core: bool) -> bool:
    try:
        module = bindings.bindings()
    except MaestroFluxError as err:
        report.line("FAIL", "bindings", str(err) if flux_core else
                    "the Flux Python bindings cannot be imported without flux-core (above); "
                    "once it is installed, pip install \"flux-python==V\" ply, V being its "
                    "version ('flux version')")
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


def _instance(broker: Broker, options: BatchOptions,
              report: Report) -> tuple[BrokerQueues, bool | None, str]:
    """Version, level, size; returns (queues, flux-accounting loaded or None, how known)."""
    def attr(name: str) -> str:
        return broker.call(lambda h: bindings.attr(h, name))

    version = attr("version")  # the broker's libflux-core, as 'flux version' prints it
    client = report.facts.get("bindings", "")
    same = client == version
    report.line("ok" if same else "warn", "version",
                f"broker {version}, bindings {client}" + ("" if same else
                f": they differ; install flux-python=={version} to match the broker"))
    queues = broker.queues()
    accounting, how = broker.call(queue_lookup.accounting)
    role = "guest (urgency capped at 16)" if broker.is_guest() else "owner"
    report.line("ok", "instance", f"level {attr('instance-level')}, size {attr('size')} "
                f"broker(s), you are the {role}")
    has = broker.inventory()
    report.line("ok" if has.nodes is not None else "warn", "resources",
                has.describe() + (" (resource.status)" if has.nodes is not None else ""))
    report.line("ok" if queues.known else "warn", "queues",
                (f"{queues.describe()} (from {queues.how})" if queues.known else
                 queues.describe()) + f": {queue_policy(queues, options.portable)}")
    if accounting is None and broker.is_guest():
        # Not a fault: the plugin list is the owner's to read (guest_rpcs.json).
        report.line("ok", "banks", f"{NOT_VISIBLE}: {how}; where flux-accounting runs, "
                                   "'flux account view-user $USER' lists your banks")
    else:
        report.line("ok" if accounting is not None else "warn", "banks",
                    {True: f"flux-accounting is loaded ({how}): banks are checked",
                     False: f"flux-accounting is not loaded ({how}): a bank is accepted and "
                            "ignored"}.get(accounting, f"cannot tell whether banks are "
                                                       f"checked: {how}"))
    return queues, accounting, how


def _spec_queues(options: BatchOptions) -> list[tuple[str, str]]:
    """Each queue the spec names: (where, queue), the batch block's and every profile's."""
    found = [("batch.queue", options.queue)] if options.queue else []
    found += [(f"batch.profiles.{name}.queue", profile.options["queue"])
              for name, profile in options.profiles.items() if profile.options.get("queue")]
    return found


def _queue_line(where: str, queue: str, options: BatchOptions, queues: BrokerQueues,
                label: str, report: Report) -> None:
    try:
        fit = fit_queue({"queue": queue}, queues, label, options.portable)
    except StepError as err:
        report.line("FAIL", "queue", f"{where}: {err}")
        return
    if fit.dropped:
        report.line("warn", "queue", f"{where}: {fit.note}; steps still run")
    elif fit.note and queues.known:  # kept with portable: false where Flux has no queues
        report.line("FAIL", "queue", f"{where}: {fit.note}: remove it or drop "
                                     "'portable: false'")
    elif fit.note:
        report.line("warn", "queue", f"{where}: {fit.note}")
    else:
        report.line("ok", "queue", f"{where}: '{queue}' exists on {label}")


def _spec_targets(options: BatchOptions, queues: BrokerQueues, accounting: bool | None,
                  how: str, label: str, report: Report) -> None:
    named = _spec_queues(options)
    for where, queue in named:
        _queue_line(where, queue, options, queues, label, report)
    if not named and queues.names:
        report.line("warn", "queue", f"batch.queue is not set; this instance has queues "
                                     f"{', '.join(queues.names)}: steps go to its default "
                                     "queue")
    if options.bank:
        report.line("ok" if accounting is not None else "warn", "bank",
                    bank_policy(options.bank, accounting, label, how))


def _skipped(report: Report, why: str) -> None:
    for label in ("uri", "connect", "instance"):
        report.line("skip", label, why)


def _broker_checks(options: BatchOptions, report: Report) -> None:
    broker = _connect(options, report)
    if broker is None:
        return
    try:
        queues, accounting, how = _instance(broker, options, report)
    except (MaestroFluxError, OSError) as err:
        report.line("FAIL", "instance", f"the broker did not answer: {err}")
        return
    _spec_targets(options, queues, accounting, how, broker.label, report)


def doctor(spec: str | None = None, out: Callable[[str], None] = print) -> int:
    """Run every check, one line each, then the verdict; 0 when submission would work."""
    logging.getLogger("maestro_flux").addHandler(logging.NullHandler())  # the report says it
    report = Report(out)
    options = _spec_options(spec, report)
    if options is not None:
        on, text = gate.conductor_line(options)
        report.line("ok" if on else "warn", "conductor", text)
    flux_core = _flux_core(report)
    has_bindings = _bindings(report, flux_core)
    if options is None:
        _skipped(report, "the spec must be fixed first")
    elif not has_bindings:
        _skipped(report, "needs the Flux bindings")
    else:
        _broker_checks(options, report)
    if not report.failed:
        out("submission should work")
    elif not (flux_core and has_bindings):
        out("submission would fail: see FAIL; render and dry runs still work without Flux")
    else:
        out("submission would fail: see FAIL")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(doctor(sys.argv[1] if len(sys.argv) > 1 else None))
