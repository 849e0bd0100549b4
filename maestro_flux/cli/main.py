"""The ``maestro-flux`` command."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
from typing import Any

from maestro_flux import __version__
from maestro_flux.broker import bindings
from maestro_flux.maestro import registration
from maestro_flux.model.errors import MaestroFluxError


def version_text() -> str:
    """Package, maestrowf and flux-python versions, and how Maestro finds us."""
    maestro = importlib.metadata.version("maestrowf")
    flux_python = bindings.bindings_version() or "not installed"
    return (f"maestro-flux {__version__}\n"
            f"maestrowf {maestro}\n"
            f"flux-python {flux_python}\n"
            f"mechanism: {registration.mechanism()}")


def _install_shim(args: argparse.Namespace) -> int:
    print(f"wrote {registration.install_shim()}")
    return 0


def _remove_shim(args: argparse.Namespace) -> int:
    removed = registration.remove_shim()
    print(f"removed {removed}" if removed else "nothing to remove (pip owns the shim, or none)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from maestro_flux.cli.runner import run_study

    return run_study(args.spec, size=args.size, dry=args.dry, maestro_args=args.maestro_args,
                     dry_without_flux=args.dry_without_flux, private=args.private)


def _render(args: argparse.Namespace) -> int:
    from maestro_flux.cli.render import render_study

    return render_study(args.spec, step=args.step, fmt=args.format, full_env=args.full_env)


def _doctor(args: argparse.Namespace) -> int:
    from maestro_flux.cli.doctor import doctor

    return doctor(args.spec)


def _resume(args: argparse.Namespace) -> int:
    from maestro_flux.cli.resume import resume_study

    return resume_study(args)


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run a study on Flux, starting a private instance if "
                                     "no broker is reachable")
    run.add_argument("spec", help="Maestro study specification (YAML)")
    run.add_argument("--size", type=int, default=1,
                     help="brokers in the private instance (flux start --test-size)")
    run.add_argument("--private", action="store_true",
                     help="start a private instance even where a broker is reachable")
    run.add_argument("--dry", action="store_true", help="write the scripts, submit nothing")
    run.add_argument("--dry-without-flux", action="store_true",
                     help="where flux-core is not installed, do a dry run instead of failing")
    run.add_argument("maestro_args", nargs=argparse.REMAINDER,
                     help="further 'maestro run' options (after --)")
    run.set_defaults(func=_run)


def _add_render_and_doctor(sub: Any) -> None:
    render = sub.add_parser("render", help="print each step's script and jobspec; "
                                           "needs no broker")
    render.add_argument("spec", help="Maestro study specification (YAML)")
    render.add_argument("--step", help="only this step (its name, or the expanded name)")
    render.add_argument("--format", choices=("yaml", "json"), default="yaml",
                        help="how to print the jobspec (default yaml)")
    render.add_argument("--full-env", action="store_true",
                        help="print the job environment instead of counting it")
    render.set_defaults(func=_render)
    doc = sub.add_parser("doctor", help="check that submission to Flux will work: bindings, "
                                        "URI, connection, instance, queue and bank")
    doc.add_argument("spec", nargs="?", help="study specification whose batch block to check")
    doc.set_defaults(func=_doctor)


def _conductor_options(command: Any, doing: str) -> None:
    """-fg, -s, -t and -r, as maestro run has them, defaulting to the study's own."""
    command.add_argument("directory", help="the study's output directory")
    command.add_argument("-fg", action="store_true",
                         help=f"{doing} in the foreground (default: background)")
    command.add_argument("-s", "--sleeptime", type=int, default=None,
                         help="seconds between conductor cycles (default: the study's own)")
    command.add_argument("-t", "--throttle", type=int, default=None,
                         help="at most this many of the study's jobs in Flux (0: no limit; "
                              "default: the study's own)")
    command.add_argument("-r", "--rlimit", type=int, default=None,
                         help="restart limit of the steps (default: the study's own)")
    command.add_argument("--here-env", action="store_true",
                         help="submit with this shell's environment, not the one the study "
                              "was started with")
    # The lock a background command hands to the conductor it starts (conductor_lock.py).
    command.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)


def _add_resume(sub: Any) -> None:
    resume = sub.add_parser("resume", help="take up a study whose conductor died: every "
                                           "job in Flux kept, every step run once")
    _conductor_options(resume, "run the conductor")
    resume.set_defaults(func=_resume)


def _add_steering(sub: Any) -> None:
    from maestro_flux.cli import retry

    again = sub.add_parser("retry", help="run again, in place, the steps that did not "
                                         "succeed (or those named, and all below them)")
    _conductor_options(again, "run the conductor")
    again.add_argument("steps", nargs="*", metavar="STEP",
                       help="a step, a study step (all its combinations) or a glob "
                            "(step_*); default: every step that did not succeed")
    again.add_argument("--dry", action="store_true",
                       help="list what would run again, in graph order; submit nothing")
    again.add_argument("--force", action="store_true",
                       help="run named steps again even if they FINISHED")
    again.set_defaults(func=retry.retry_study)
    stop = sub.add_parser("cancel", help="cancel chosen steps of a running study, and all "
                                         "below them; the rest goes on")
    stop.add_argument("directory", help="the study's output directory")
    stop.add_argument("steps", nargs="+", metavar="STEP",
                      help="a step, a study step (all its combinations) or a glob (step_*)")
    stop.add_argument("--wait", type=float, default=None,
                      help="seconds to wait for the conductor's answer (default: the "
                           "study's sleep + 30)")
    stop.set_defaults(func=retry.cancel_steps)


def _add_shim(sub: Any) -> None:
    shim = sub.add_parser("install-shim", help="register with Maestro after an editable install")
    shim.set_defaults(func=_install_shim)
    unshim = sub.add_parser("remove-shim", help="undo install-shim")
    unshim.set_defaults(func=_remove_shim)


def _status(args: argparse.Namespace) -> int:
    from maestro_flux.cli import status  # rich's views: imported when asked for

    return status.main(args)


def _report(args: argparse.Namespace) -> int:
    from maestro_flux.cli import report  # plotly and networkx: imported when asked for

    return report.main(args)


def _add_status(sub: Any) -> None:
    status = sub.add_parser("status", help="the study as Flux runs it: each step's Maestro "
                                           "and Flux state, laid out by the graph")
    status.add_argument("directory", help="the study's output directory")
    status.add_argument("--watch", action="store_true",
                        help="refresh in place until the study ends")
    status.add_argument("--interval", type=float, default=2.0,
                        help="seconds between refreshes with --watch (at least 1; default 2)")
    status.add_argument("--json", action="store_true",
                        help="print the data as JSON (one line per refresh with --watch)")
    status.add_argument("--unfold", nargs="*", metavar="GROUP",
                        help="show every step of these parameter groups (none named: of all)")
    status.add_argument("--fold-above", type=int, default=None, metavar="N",
                        help="fold a level's parameter group of more than N steps (default: "
                             "fold only when the steps do not fit the screen)")
    status.add_argument("--uri", help="ask this broker (default: the study's own: flux_uri, "
                                      "else FLUX_URI, else the system instance)")
    status.add_argument("--offline", action="store_true",
                        help="show what the study's files say, without asking Flux")
    status.set_defaults(func=_status)


def _add_report(sub: Any) -> None:
    report = sub.add_parser("report", help="one self-contained HTML file: the study's "
                                           "graph, a timeline of its jobs, a summary")
    report.add_argument("directory", help="the study's output directory")
    report.add_argument("-o", "--output", default=None,
                        help="the HTML file to write (default: STUDY_DIR/report.html)")
    report.add_argument("--fold-above", type=int, default=24, metavar="N",
                        help="draw a level's parameter group of more than N steps as one "
                             "node (default 24)")
    report.add_argument("--uri", help="ask this broker (default: the study's own)")
    report.add_argument("--offline", action="store_true",
                        help="from the study's files only, without asking Flux")
    report.set_defaults(func=_report)


def _add_views(sub: Any) -> None:
    _add_status(sub)
    _add_report(sub)


#: Each command's arguments, in the order ``--help`` lists them.
COMMANDS = (_add_run, _add_render_and_doctor, _add_resume, _add_steering, _add_views,
            _add_shim)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="maestro-flux",
                                  description="Flux Framework adapter for Maestro.",
                                  formatter_class=argparse.RawTextHelpFormatter)
    top.add_argument("--version", action="version", version=version_text())
    sub = top.add_subparsers(dest="command")
    for add in COMMANDS:
        add(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    args = parser().parse_args(argv)
    if not getattr(args, "func", None):
        parser().print_help()
        return 2
    try:
        return args.func(args)
    except MaestroFluxError as err:
        print(f"maestro-flux: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"maestro-flux: {err.filename or ''} {err.strerror or err}".strip(),
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
