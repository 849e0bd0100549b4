"""The ``flux batch`` submission options maestro-flux accepts, as data.

One table says, for every option, its long name (as ``flux batch`` spells it),
its short flag and its kind. The kind decides how a value is read from YAML or
from a ``#flux:`` directive, how two layers merge, and how it is written back
as ``--name=value`` arguments, one flag per value:

- ``count`` and ``scalar``: the later layer wins;
- ``flag``: the later layer wins (YAML ``false`` clears a directive's flag,
  which the CLI cannot express);
- ``list``: values accumulate in order, as repeated CLI flags do;
- ``mapping``: KEY=VALUE entries merge key by key, the later layer winning.

``env-remove`` and ``env-file`` are stored as ``env`` rules (``-PATTERN`` and
``^FILE``), exactly as ``flux batch`` does, so their order with ``env`` holds.

``jobspec`` names the keyword of flux-python's ``JobspecV1.from_batch`` (which
hands what it does not take itself to ``apply_options``) that carries the option
into the jobspec; broker/apply_options.py applies each keyword with the calls that every
supported flux-python has, where ``from_batch``/``apply_options`` are missing.
None: the option is not part of the jobspec (urgency and flags go with the submit
request; env rules become the environment through maestro-flux's own policy).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from maestro_flux.model import durations

COUNT, SCALAR, FLAG, LIST, MAPPING = "count", "scalar", "flag", "list", "mapping"


@dataclass(frozen=True)
class FluxOption:
    """One ``flux batch`` option."""

    name: str
    kind: str
    short: str | None = None
    minimum: int = 0
    jobspec: str | None = None


OPTIONS: dict[str, FluxOption] = {o.name: o for o in (
    FluxOption("nodes", COUNT, "N", 1, jobspec="nodes"),
    FluxOption("nslots", COUNT, "n", 1, jobspec="nslots"),
    FluxOption("cores-per-slot", COUNT, "c", 1, jobspec="cores_per_slot"),
    FluxOption("gpus-per-slot", COUNT, "g", 0, jobspec="gpus_per_slot"),
    FluxOption("exclusive", FLAG, "x", jobspec="exclusive"),
    FluxOption("time-limit", SCALAR, "t", jobspec="time_limit"),
    FluxOption("queue", SCALAR, "q", jobspec="queue"),
    FluxOption("bank", SCALAR, "B", jobspec="bank"),
    FluxOption("job-name", SCALAR, jobspec="name"),
    FluxOption("urgency", COUNT, None, 0),
    FluxOption("begin-time", SCALAR, jobspec="dependency"),
    FluxOption("dependency", LIST, jobspec="dependency"),
    FluxOption("requires", LIST, jobspec="requires"),
    FluxOption("setattr", MAPPING, "S", jobspec="attributes"),
    FluxOption("setopt", MAPPING, "o", jobspec="shell_options"),
    FluxOption("conf", MAPPING, jobspec="conf"),
    FluxOption("env", LIST),
    FluxOption("env-remove", LIST),
    FluxOption("env-file", LIST),
    FluxOption("rlimit", LIST, jobspec="rlimit"),
    FluxOption("broker-opts", LIST, jobspec="broker_opts"),
    FluxOption("flags", LIST),
    FluxOption("output", SCALAR, jobspec="output"),
    FluxOption("error", SCALAR, jobspec="error"),
    FluxOption("signal", SCALAR, jobspec="signal"),
    FluxOption("add-file", LIST, jobspec="add_file"),
)}

#: Options of ``flux submit``/``flux run`` that ``flux batch`` rejects.
SUBMIT_ONLY: dict[str, str] = {
    "ntasks": "nslots", "tasks-per-node": "nslots with nodes",
    "tasks-per-core": "cores-per-slot", "cores-per-task": "cores-per-slot",
    "gpus-per-task": "gpus-per-slot", "cores": "nslots", "gpus-per-node": "gpus-per-slot",
    "taskmap": None, "cc": None, "bcc": None, "wait": None, "wait-event": None,
    "watch": None, "progress": None, "jps": None, "log": None, "log-stderr": None,
    "label-io": None, "input": None, "unbuffered": None,
}

#: ``flux batch`` options that maestro-flux decides itself.
DECIDED_HERE: dict[str, str] = {
    "cwd": "every step runs in its Maestro workspace",
    "wrap": "the step script is always a script",
    "dry-run": "use 'maestro-flux render' to see what would be submitted",
    "quiet": "nothing is printed on submission",
    "dump": "set broker-opts: ['-Scontent.dump=FILE'] instead",
    "add-brokers": "not supported",
}

#: What ``--flags`` may name (flux batch splits its values on commas).
SUBMIT_FLAGS = ("waitable", "debug", "novalidate")

#: Where env-remove and env-file values go: prefixed rules in ``env``.
ENV_PREFIX = {"env-remove": "-", "env-file": "^"}


def not_a_batch_option(name: str) -> str | None:
    """Why ``name`` is not accepted, if it is a known option of another flux command."""
    if name in SUBMIT_ONLY:
        hint = SUBMIT_ONLY[name]
        instead = f"; use '{hint}'" if hint else ""
        return f"'{name}' is a flux submit/run option that flux batch does not accept{instead}"
    if name in DECIDED_HERE:
        return f"'{name}' cannot be set: {DECIDED_HERE[name]}"
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def jsonish(value: Any) -> Any:
    """A value as the flux CLI reads KEY=VAL: JSON if it parses, else the string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _keyval(entry: Any, name: str) -> tuple[str, Any]:
    text = str(entry)
    key, sep, value = text.partition("=")
    if not key:
        raise ValueError(f"'{name}' entry {entry!r} has no key")
    return key, jsonish(value) if sep else 1


def _count(value: Any, spec: FluxOption) -> int:
    if isinstance(value, bool):
        raise ValueError(f"'{spec.name}' must be a whole number, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{spec.name}' must be a whole number, not {value!r}") from None
    if number < spec.minimum or (spec.name == "urgency" and number > 31):
        bounds = "0..31" if spec.name == "urgency" else f">= {spec.minimum}"
        raise ValueError(f"'{spec.name}' must be {bounds}, not {number}")
    return number


def _as_list(value: Any, name: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, (dict, list)) or item is None:
            raise ValueError(f"'{name}' takes strings, one per flag, not {item!r}")
    return [_text(item) for item in items]


def _as_mapping(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {str(k): (1 if v is None else v) for k, v in value.items()}
    return dict(_keyval(item, name) for item in _as_list(value, name))


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"'{name}' is a flag: write true or false, not {value!r}")


def _check_flags(values: list[str]) -> None:
    for flag in (part for value in values for part in value.split(",") if part):
        if flag not in SUBMIT_FLAGS:
            raise ValueError(f"'flags': unknown submission flag '{flag}' "
                             f"(flux batch knows {', '.join(SUBMIT_FLAGS)})")


def normalize(name: str, value: Any) -> tuple[str, Any]:
    """One option's value from YAML, in the canonical form the merge rules use."""
    spec = OPTIONS[name]
    if spec.kind == COUNT:
        return name, _count(value, spec)
    if spec.kind == FLAG:
        return name, _flag(value, name)
    if spec.kind == SCALAR:
        if isinstance(value, (dict, list, bool)) or value is None or value == "":
            raise ValueError(f"'{name}' takes one value, not {value!r}")
        if name == "time-limit":
            durations.seconds(value, name)  # refused here, under its own name
        return name, str(value)
    if spec.kind == MAPPING:
        return name, _as_mapping(value, name)
    values = _as_list(value, name)
    if name == "flags":
        _check_flags(values)
    if name in ENV_PREFIX:
        return "env", [ENV_PREFIX[name] + item for item in values]
    return name, values


def merge_into(low: dict[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``high`` over ``low`` in place, key by key, by each option's kind."""
    for name, value in high.items():
        kind = OPTIONS[name].kind
        if kind == LIST:
            low[name] = [*low.get(name, []), *value]
        elif kind == MAPPING:
            low[name] = {**low.get(name, {}), **value}
        else:
            low[name] = value
    return low


def layered(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge layers given from lowest to highest precedence."""
    result: dict[str, Any] = {}
    for layer in layers:
        merge_into(result, layer)
    return result


def _pairs(flag: str, mapping: Mapping[str, Any]) -> list[str]:
    return [f"--{flag}={key}" if value == 1 and flag != "conf" else
            f"--{flag}={key}={_text(value)}" for key, value in mapping.items()]


def to_argv(options: Mapping[str, Any], order: Iterable[str] | None = None) -> list[str]:
    """``flux batch`` arguments asking for ``options``, one flag per value."""
    argv: list[str] = []
    for name in order or OPTIONS:
        if name not in options:
            continue
        kind, value = OPTIONS[name].kind, options[name]
        if kind == FLAG:
            argv += [f"--{name}"] if value else []
        elif kind == LIST:
            argv += [f"--{name}={item}" for item in value]
        elif kind == MAPPING:
            argv += _pairs(name, value)
        else:
            argv.append(f"--{name}={value}")
    return argv


class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so a directive's error names its file and line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Refused(message)


class _EnvRule(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        rules = getattr(namespace, "env", None) or []
        prefix = ENV_PREFIX.get(self.dest, "")
        namespace.env = [*rules, prefix + values]


def _parser() -> _Parser:
    parser = _Parser(prog="flux batch", add_help=False, allow_abbrev=False)
    for spec in OPTIONS.values():
        flags = [f"--{spec.name}"] + ([f"-{spec.short}"] if spec.short else [])
        if spec.kind == FLAG:
            parser.add_argument(*flags, dest=spec.name, action="store_true", default=None)
        elif spec.name.startswith("env"):
            parser.add_argument(*flags, dest=spec.name, action=_EnvRule)
        elif spec.kind in (LIST, MAPPING):
            parser.add_argument(*flags, dest=spec.name, action="append")
        else:
            parser.add_argument(*flags, dest=spec.name)
    return parser


_PARSER = _parser()


def _unknown(word: str) -> str:
    name = word.lstrip("-").split("=", 1)[0]
    reason = not_a_batch_option(name)
    return reason or f"'{word}' is not a flux batch option maestro-flux knows"


def from_args(args: list[str]) -> dict[str, Any]:
    """Options from one directive's arguments (``--nodes=2 -q debug ...``).

    Raises ValueError saying which argument is at fault.
    """
    try:
        parsed, rest = _PARSER.parse_known_args(args)
    except _Refused as err:
        raise ValueError(str(err)) from None
    if rest:
        raise ValueError(_unknown(rest[0]))
    found: dict[str, Any] = {}
    for name, value in vars(parsed).items():
        if value is None:
            continue
        if name in ENV_PREFIX:
            continue  # already folded into env, in order
        spec = OPTIONS[name]
        if spec.kind == MAPPING:
            value = dict(_keyval(item, name) for item in value)
        elif spec.kind == COUNT:
            value = _count(value, spec)
        elif name == "flags":
            _check_flags(value)
        elif name == "time-limit":
            durations.seconds(value, name)
        found[name] = value
    return found
